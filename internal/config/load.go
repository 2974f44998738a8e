// Package config loads and validates hazmon's YAML configuration.
//
// Loading is strict: an unknown key, a value of the wrong type or a missing
// required key is an error that names the file, the line and the key path
// (e.g. "hazmon.yaml:14: sensors[1].slave: 300 is outside 1..247").
// Load returns every problem found, not only the first.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one configuration error or warning, located in the file.
type Problem struct {
	File    string // config file path as given
	Line    int    // 1-based line, 0 if unknown
	Path    string // key path, e.g. "sensors[2].slave"
	Message string

	duplicate bool // a key given twice: the parser read none of its mapping
}

// Error formats p as "file:line: key.path: message".
func (p Problem) Error() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Path != "" {
		return loc + ": " + p.Path + ": " + p.Message
	}
	return loc + ": " + p.Message
}

// Error is returned by Load when the file is not a valid configuration.
// It lists every problem found; errors.As(err, &*config.Error) gives them.
type Error struct {
	Problems []Problem
}

// Error lists every problem, one per line after a count.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d config error(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Loaded is a valid configuration plus the warnings found while validating it.
type Loaded struct {
	Config   *Config
	Warnings []Problem
}

// MaxFileSize bounds a config file: a site's config is a few kB, and
// decoding a huge one takes far more memory than a small board has (a
// 10 MB file took 864 MB to validate), so a larger file is refused before
// it is parsed.
const MaxFileSize = 4 << 20

// Load reads, strictly decodes, defaults and validates the file at path.
// On failure the error is an *Error listing every problem with file:line and
// key path (or a plain error if the file cannot be read at all, or is
// larger than MaxFileSize).
func Load(path string) (*Loaded, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// readFile reads the config file at path, refusing one larger than
// MaxFileSize before parsing it.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("config: %s is larger than %d MiB: not a hazmon config (refused before parsing)", path, MaxFileSize>>20)
	}
	return data, nil
}

// Parse is Load on bytes already read; name is used in messages.
func Parse(name string, data []byte) (*Loaded, error) {
	docs := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := docs.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, &Error{Problems: []Problem{syntaxProblem(name, data, err)}}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &Error{Problems: []Problem{{File: name, Line: 1, Message: "file is empty"}}}
	}
	if p, ok := secondDocument(name, data, docs); ok {
		return nil, &Error{Problems: []Problem{p}}
	}
	idx := newIndex(&root)
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var probs []Problem
	if err := dec.Decode(&cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, &Error{Problems: []Problem{syntaxProblem(name, data, err)}}
		}
		for _, msg := range te.Errors {
			probs = append(probs, idx.problem(name, msg))
		}
	}
	// Validate even after decode errors, so one run shows every problem;
	// skip what a decode error already explains (its key path). Not after
	// a key given twice: the parser then reads none of its mapping and
	// closes the gap in a list, so later entries would be checked under
	// the wrong index and line; the duplicate's message says the rest is
	// checked once it is fixed.
	bad := map[string]bool{}
	dup := false
	for _, p := range probs {
		bad[p.Path] = true
		dup = dup || p.duplicate
	}
	applyDefaults(&cfg)
	errs, warns := cfg.validate()
	for _, v := range errs {
		if !bad[v.path] && !dup {
			probs = append(probs, idx.locate(name, v))
		}
	}
	if len(probs) == 0 {
		var ws []Problem
		for _, v := range warns {
			ws = append(ws, idx.locate(name, v))
		}
		return &Loaded{Config: &cfg, Warnings: ws}, nil
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	return nil, &Error{Problems: probs}
}

var lineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func yamlSyntaxProblem(name string, err error) Problem {
	msg := err.Error()
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{File: name, Line: n, Message: m[2]}
	}
	return Problem{File: name, Message: strings.TrimPrefix(msg, "yaml: ")}
}

// index maps key paths to lines and lines to the keys on them.
type index struct {
	pathLine map[string]int
	lineKeys map[int][]lineKey
}

// lineKey is one key on a line: its path, its name and its scalar value.
type lineKey struct {
	path, key, value string
}

func newIndex(root *yaml.Node) *index {
	ix := &index{pathLine: map[string]int{}, lineKeys: map[int][]lineKey{}}
	ix.walk(root.Content[0], "")
	return ix
}

func (ix *index) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ix.pathLine[p] = k.Line
			val := ""
			if v.Kind == yaml.ScalarNode {
				val = v.Value
			}
			ix.lineKeys[k.Line] = append(ix.lineKeys[k.Line], lineKey{path: p, key: k.Value, value: val})
			if v.Kind == yaml.ScalarNode && v.Line != k.Line {
				ix.lineKeys[v.Line] = append(ix.lineKeys[v.Line], lineKey{path: p, key: k.Value, value: val})
			}
			ix.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			ix.pathLine[p] = c.Line
			if c.Kind == yaml.ScalarNode {
				ix.lineKeys[c.Line] = append(ix.lineKeys[c.Line], lineKey{path: p, value: c.Value})
			}
			ix.walk(c, p)
		}
	}
}

var (
	fieldNotFound = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	quotedValue   = regexp.MustCompile("`([^`]*)`|\"([^\"]*)\"")
)

// keyAt picks the key an error on line is about: the one named (unknown
// key) or whose value the message quotes, else the first on the line.
func (ix *index) keyAt(line int, key, value string, quoted bool) string {
	keys := ix.lineKeys[line]
	for _, k := range keys {
		if (key != "" && k.key == key) || (quoted && key == "" && k.value == value) {
			return k.path
		}
	}
	if len(keys) > 0 {
		return keys[0].path
	}
	return ""
}

// problem turns a yaml.v3 decode message ("line 7: field foo not found in
// type config.Bus") into a located Problem with a key path.
func (ix *index) problem(name, msg string) Problem {
	m := lineRe.FindStringSubmatch(msg)
	if m == nil {
		return Problem{File: name, Message: msg}
	}
	line, _ := strconv.Atoi(m[1])
	text := m[2]
	var path string
	if f := fieldNotFound.FindStringSubmatch(text); f != nil {
		path = ix.keyAt(line, f[1], "", false)
		text = unknownKey(f[1], f[2])
	} else if key, msg, ok := explainDuplicate(text); ok {
		path = ix.keyAt(line, key, "", false)
		return Problem{File: name, Line: line, Path: path, Message: msg, duplicate: true}
	} else {
		q := quotedValue.FindStringSubmatch(text)
		v := ""
		if q != nil {
			v = q[1] + q[2]
		}
		path = ix.keyAt(line, "", v, q != nil)
		text = strings.Replace(text, "cannot unmarshal", "wrong type: cannot use", 1)
	}
	return Problem{File: name, Line: line, Path: path, Message: text}
}

// locate finds the line of a validation problem from its key path, walking
// up to the nearest parent present in the file (a missing key is reported
// at its parent's line).
func (ix *index) locate(name string, v violation) Problem {
	p := v.path
	for p != "" {
		if l, ok := ix.pathLine[p]; ok {
			return Problem{File: name, Line: l, Path: v.path, Message: v.msg}
		}
		if i := strings.LastIndexAny(p, ".["); i >= 0 {
			p = p[:i]
		} else {
			p = ""
		}
	}
	return Problem{File: name, Path: v.path, Message: v.msg}
}

// DataDirOf returns agent.data_dir of the file at path as far as it can be
// read, even when the file does not load or validate (DefaultDataDir when
// it names none or cannot be read at all): a restart with a broken config
// still finds where the last good config's outputs are remembered.
func DataDirOf(path string) string {
	data, err := readFile(path)
	if err != nil {
		return DefaultDataDir
	}
	var doc struct {
		Agent struct {
			DataDir string `yaml:"data_dir"`
		} `yaml:"agent"`
	}
	_ = yaml.Unmarshal(data, &doc) // best effort: whatever decoded is used
	if doc.Agent.DataDir == "" {
		return DefaultDataDir
	}
	return doc.Agent.DataDir
}

// PeekSocket reads only control.socket from a config file that may not
// load, so a technician's CLI still finds the running agent while the
// file on disk has a typo. It returns "" only when the file has no
// control section at all (the agent then uses the default socket); it
// fails when the file cannot be read, is not YAML, or has a control
// section without a readable socket (a typo there must not send commands
// to another agent's default socket).
func PeekSocket(path string) (string, error) {
	data, err := readFile(path)
	if err != nil {
		return "", err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if len(root.Content) == 0 {
		return "", nil
	}
	ctl := mapValue(root.Content[0], "control")
	if ctl == nil {
		return "", nil
	}
	sock := mapValue(ctl, "socket")
	if sock == nil || sock.Kind != yaml.ScalarNode || sock.Value == "" {
		return "", fmt.Errorf("%s: control.socket cannot be read from it", path)
	}
	return sock.Value, nil
}

// mapValue returns the first value of key in mapping n (nil if n is not a
// mapping or has no such key).
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
	}
	return nil
}
