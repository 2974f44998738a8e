package contract

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed schemas/*.json
var schemaFS embed.FS

const schemaBase = "https://hazmon.example/schemas/v1/"

// Schemas returns the embedded JSON Schemas (draft 2020-12), keyed by
// file name ("telemetry.json", "reading.json", ...), for publication.
func Schemas() (fs.FS, error) { return fs.Sub(schemaFS, "schemas") }

// compiled holds the schemas compiled once; the sync.OnceValues makes it
// read-only after first use (no mutable package state).
var compiled = sync.OnceValues(compileSchemas)

func compileSchemas() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	entries, err := schemaFS.ReadDir("schemas")
	if err != nil {
		return nil, fmt.Errorf("contract: read schemas: %w", err)
	}
	for _, e := range entries {
		b, err := schemaFS.ReadFile("schemas/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("contract: read schema %s: %w", e.Name(), err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("contract: parse schema %s: %w", e.Name(), err)
		}
		if err := c.AddResource(schemaBase+e.Name(), doc); err != nil {
			return nil, fmt.Errorf("contract: add schema %s: %w", e.Name(), err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, e := range entries {
		s, err := c.Compile(schemaBase + e.Name())
		if err != nil {
			return nil, fmt.Errorf("contract: compile schema %s: %w", e.Name(), err)
		}
		out[strings.TrimSuffix(e.Name(), ".json")] = s
	}
	return out, nil
}

// Validate checks payload against the schema of kind (KindTelemetry,
// KindTelemetryV2, KindAlarm, KindEvent, KindStatus, KindCurrent,
// KindAlarms, KindOutputs, KindPoints, KindStats or "reading"; a kind's
// schema file is its name with '/' as '_'). It returns
// an error naming the kind and every violation, or nil if payload conforms.
func Validate(kind string, payload []byte) error {
	schemas, err := compiled()
	if err != nil {
		return err
	}
	s, ok := schemas[strings.ReplaceAll(kind, "/", "_")]
	if !ok {
		return fmt.Errorf("contract: no schema for kind %q", kind)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("contract: %s payload is not JSON: %w", kind, err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("contract: %s payload: %w", kind, err)
	}
	return nil
}
