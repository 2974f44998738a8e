package config

import (
	"reflect"
	"sort"
	"strings"
)

// Key is one configuration key as `hazmon config keys` lists it. The keys
// and their types come from the Config struct itself (its yaml tags), the
// default and meaning from keyDocs; a test checks that every yaml key has
// its entry, so the list cannot drift from what Load accepts.
type Key struct {
	Path    string `json:"key"`     // e.g. "sensors[].rules[].level"; "[]" marks an item of a list
	Type    string `json:"type"`    // string, int, number, bool, duration, size, "list of T", list (of maps), map
	Default string `json:"default"` // "required", a value, a rule ("1s tcp, 500ms rtu") or "" (none: unset)
	Meaning string `json:"meaning"`
}

// Keys lists every key of the config file in file order, sections before
// their keys.
func Keys() []Key {
	var out []Key
	walkKeys(reflect.TypeFor[Config](), "", func(path string, f reflect.StructField) {
		d := keyDocs[path]
		out = append(out, Key{Path: path, Type: typeName(f.Type), Default: d.def, Meaning: d.meaning})
	})
	return out
}

// keyDoc is a key's default and meaning (keyDocs).
type keyDoc struct{ def, meaning string }

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// walkKeys calls fn for every yaml key of struct type t under prefix,
// descending into maps and lists of maps.
func walkKeys(t reflect.Type, prefix string, fn func(path string, f reflect.StructField)) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fn(path, f)
		switch ft := deref(f.Type); {
		case ft.Kind() == reflect.Struct && ft != durationType:
			walkKeys(ft, path, fn)
		case ft.Kind() == reflect.Slice && deref(ft.Elem()).Kind() == reflect.Struct:
			walkKeys(deref(ft.Elem()), path+"[]", fn)
		}
	}
}

// yamlName is the key of a struct field ("" for a field yaml skips).
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// typeName names a key's type for people.
func typeName(t reflect.Type) string {
	t = deref(t)
	switch {
	case t == durationType:
		return "duration"
	case t == sizeType:
		return "size"
	case t.Kind() == reflect.Struct:
		return "map"
	case t.Kind() == reflect.Slice:
		if e := deref(t.Elem()); e.Kind() == reflect.Struct {
			return "list"
		} else {
			return "list of " + typeName(e)
		}
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "number"
	}
	return "int"
}

// typeKeys maps the Go type names a decode error names ("config.Sensor")
// to the keys that type accepts, for "did you mean".
var typeKeys = func() map[string][]string {
	m := map[string][]string{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		if _, done := m[t.String()]; done {
			return
		}
		m[t.String()] = nil
		for i := range t.NumField() {
			f := t.Field(i)
			if name := yamlName(f); name != "" {
				m[t.String()] = append(m[t.String()], name)
			}
			switch ft := deref(f.Type); {
			case ft.Kind() == reflect.Struct && ft != durationType:
				add(ft)
			case ft.Kind() == reflect.Slice && deref(ft.Elem()).Kind() == reflect.Struct:
				add(deref(ft.Elem()))
			}
		}
		sort.Strings(m[t.String()])
	}
	add(reflect.TypeFor[Config]())
	return m
}()
