package config

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// fill sets every field of v to a non-zero value (a list gets one item,
// a pointer a value) so that yaml.Marshal writes every key.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map: // one entry, keyed mapKey: a free-form key the paths leave out
		m := reflect.MakeMap(v.Type())
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e)
		m.SetMapIndex(reflect.ValueOf(mapKey), e)
		v.Set(m)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Float64:
		v.SetFloat(1)
	}
}

// nodePaths lists the key paths of a YAML tree as Keys writes them.
func nodePaths(n *yaml.Node, prefix string, out *[]string) {
	switch n.Kind {
	case yaml.DocumentNode:
		nodePaths(n.Content[0], prefix, out)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == mapKey {
				continue // a map entry made by fill: its key is the user's
			}
			p := n.Content[i].Value
			if prefix != "" {
				p = prefix + "." + p
			}
			*out = append(*out, p)
			nodePaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.MappingNode {
				nodePaths(c, prefix+"[]", out)
			}
		}
	}
}

// Every key the YAML encoder writes for a Config with every field set is
// listed by Keys with a type, and documented; keyDocs holds no key that
// does not exist.
func TestKeys_EveryYAMLKeyDocumented(t *testing.T) {
	var c Config
	fill(reflect.ValueOf(&c).Elem())
	data, err := yaml.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	var want []string
	nodePaths(&root, "", &want)

	keys := Keys()
	byPath := map[string]Key{}
	for _, k := range keys {
		byPath[k.Path] = k
	}
	for _, p := range want {
		k, ok := byPath[p]
		switch {
		case !ok:
			t.Errorf("yaml key %s is not listed by Keys", p)
		case k.Meaning == "":
			t.Errorf("yaml key %s has no entry in keyDocs", p)
		case k.Type == "":
			t.Errorf("yaml key %s has no type", p)
		}
	}
	var stale []string
	for p := range keyDocs {
		if !slices.Contains(want, p) {
			stale = append(stale, p)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("keyDocs documents keys that do not exist: %s", strings.Join(stale, ", "))
	}
	if len(keys) != len(want) {
		t.Errorf("Keys lists %d keys, the encoder writes %d", len(keys), len(want))
	}
}

func TestKeys_TypesAndDefaults(t *testing.T) {
	want := map[string][2]string{
		"agent.id":                      {"string", "required"},
		"agent.data_dir":                {"string", DefaultDataDir},
		"mqtt.brokers":                  {"list of string", "required"},
		"mqtt.keepalive":                {"duration", "30s"},
		"mqtt.telemetry":                {"string", "v1"},
		"buses":                         {"list", ""},
		"buses[].max_gap":               {"int", "10"},
		"sensors[].scale":               {"number", "1"},
		"sensors[].range":               {"list of number", ""},
		"sensors[].gpio":                {"map", ""},
		"sensors[].rules[].level":       {"string", "required"},
		"mqtt.tls.insecure_skip_verify": {"bool", "false"},
		"mqtt.current_deadband":         {"number", "1"},
		"mqtt.current_interval":         {"duration", "10s"},
		"agent.memory_limit":            {"size", "32MiB"},
	}
	for _, k := range Keys() {
		if w, ok := want[k.Path]; ok {
			if k.Type != w[0] || k.Default != w[1] {
				t.Errorf("%s: type %q default %q, want %q %q", k.Path, k.Type, k.Default, w[0], w[1])
			}
			delete(want, k.Path)
		}
	}
	for p := range want {
		t.Errorf("%s not listed", p)
	}
}

// mapKey is the key fill gives a map's one entry.
const mapKey = "<map key>"
