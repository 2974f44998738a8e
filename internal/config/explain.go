package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The texts of this file replace the YAML parser's where a technician
// would not know what to do with it: a tab, a key given twice, a second
// document, an unknown key (with the nearest known one).

// syntaxProblem turns a YAML syntax error into a located Problem; a tab
// on the line it names gets a plain explanation instead of the parser's
// text ("found character that cannot start any token").
func syntaxProblem(name string, data []byte, err error) Problem {
	p := yamlSyntaxProblem(name, err)
	if p.Line == 0 {
		return p
	}
	lines := bytes.Split(data, []byte("\n"))
	for _, n := range []int{p.Line, p.Line + 1} { // the parser may name the line before
		if n < 1 || n > len(lines) {
			continue
		}
		if col := bytes.IndexByte(lines[n-1], '\t'); col >= 0 {
			return Problem{File: name, Line: n, Message: fmt.Sprintf("a tab character (column %d): YAML indents with spaces only; replace the tab with spaces", col+1)}
		}
	}
	return p
}

var duplicateKey = regexp.MustCompile(`^mapping key "([^"]*)" already defined at line (\d+)$`)

// explainDuplicate rewrites the parser's text for a key given twice in one
// mapping; ok is false for any other text.
func explainDuplicate(text string) (key, msg string, ok bool) {
	m := duplicateKey.FindStringSubmatch(text)
	if m == nil {
		return "", "", false
	}
	return m[1], fmt.Sprintf("key %q is given twice here (first at line %s): only one value can count; remove or rename one of them (the rest of the file is checked once no key is given twice)", m[1], m[2]), true
}

// unknownKey is the message of an unknown key in a mapping of Go type
// typ ("config.Sensor"), with the nearest known key when one is close.
func unknownKey(key, typ string) string {
	msg := fmt.Sprintf("unknown key %q", key)
	if s := nearest(key, typeKeys[typ]); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}

// secondDocument reads the documents after the first from docs and
// reports the first that is not empty (or does not parse): hazmon reads
// one document, and silently ignoring the rest would drop what they hold.
func secondDocument(name string, data []byte, docs *yaml.Decoder) (Problem, bool) {
	for {
		var doc yaml.Node
		err := docs.Decode(&doc)
		switch {
		case errors.Is(err, io.EOF):
			return Problem{}, false
		case err != nil:
			return syntaxProblem(name, data, err), true
		case !emptyDocument(&doc):
			return Problem{File: name, Line: doc.Line, Message: "a second YAML document starts here (---): hazmon reads one document and would ignore this one; put everything in one document and remove the ---"}, true
		}
	}
}

// emptyDocument reports whether doc holds nothing but comments (a "---"
// at the end of a file).
func emptyDocument(doc *yaml.Node) bool {
	if len(doc.Content) == 0 {
		return true
	}
	c := doc.Content[0]
	return c.Kind == yaml.ScalarNode && c.Tag == "!!null" && c.Value == ""
}

// nearest returns the candidate closest to word when it is close enough
// to be a typo (at most 1 edit for short words, 2 from 5 letters, a third
// of the length beyond); "" otherwise.
func nearest(word string, candidates []string) string {
	limit := 1
	if n := len(word); n >= 5 {
		limit = max(2, n/3)
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(word), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance of a and b:
// insertions, deletions, substitutions and swaps of neighbours.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// notDefined is the message of a name that refers to something undefined
// ("plc-9" as a bus): the nearest defined name when one is close, and the
// defined ones (or that there are none).
func notDefined(name, what, list string, defined []string) string {
	msg := fmt.Sprintf("%q is not %s defined in %s", name, what, list)
	if s := nearest(name, defined); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	switch {
	case len(defined) == 0:
		msg += fmt.Sprintf(" (%s defines none)", list)
	case len(defined) <= 12:
		msg += " (defined: " + strings.Join(defined, ", ") + ")"
	default:
		msg += " (defined: " + strings.Join(defined[:12], ", ") + ", and " + strconv.Itoa(len(defined)-12) + " more)"
	}
	return msg
}

// busNames, outputNames and sensorIDs list the names defined in the
// file, in its order (for messages about a name that is not among them).
func (c *Config) busNames() []string {
	var out []string
	for _, b := range c.Buses {
		if b.Name != "" {
			out = append(out, b.Name)
		}
	}
	return out
}

func (c *Config) outputNames() []string {
	var out []string
	for _, o := range c.Outputs {
		if o.Name != "" {
			out = append(out, o.Name)
		}
	}
	return out
}

func (c *Config) sensorIDs() []string {
	var out []string
	for _, s := range c.Sensors {
		if s.ID != "" {
			out = append(out, s.ID)
		}
	}
	return out
}
