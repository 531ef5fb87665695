package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
)

const inventorySchema = `{
  "type": "object",
  "properties": {
    "resource_provider_generation": {"type": "integer"},
    "total": {"type": "integer", "maximum": 2147483647, "minimum": 1},
    "allocation_ratio": {"type": "number", "maximum": 3.40282e+38}
  },
  "required": ["total", "resource_provider_generation"],
  "additionalProperties": false
}`

func decodeUseNumber(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", s, err)
	}
	return v
}

func TestValidateGoValues(t *testing.T) {
	s := MustCompile(inventorySchema)
	tests := []struct {
		name     string
		instance any
		message  string // empty: valid
		keyword  string
		schema   string
		path     string
	}{
		{"use number valid", decodeUseNumber(t, `{"total": 1, "resource_provider_generation": 0}`), "", "", "", ""},
		{"use number minimum", decodeUseNumber(t, `{"total": 0, "resource_provider_generation": 0}`),
			"0 is less than the minimum of 1", "minimum", "schema['properties']['total']", "instance['total']"},
		{"use number float is integer", decodeUseNumber(t, `{"total": 2.0, "resource_provider_generation": 0}`), "", "", "", ""},
		{"use number float repr", decodeUseNumber(t, `{"total": 1e10, "resource_provider_generation": 0}`),
			"10000000000.0 is greater than the maximum of 2147483647", "maximum", "schema['properties']['total']", "instance['total']"},
		{"go ints", map[string]any{"total": 5, "resource_provider_generation": uint64(1)}, "", "", "", ""},
		{"big int", map[string]any{"total": new(big.Int).Lsh(big.NewInt(1), 70), "resource_provider_generation": 0},
			"1180591620717411303424 is greater than the maximum of 2147483647", "maximum", "schema['properties']['total']", "instance['total']"},
		{"missing required", map[string]any{"total": 1}, "'resource_provider_generation' is a required property", "required", "schema", "instance"},
		{"sorted extras", map[string]any{"total": 1, "resource_provider_generation": 0, "b": 1, "a": 2},
			"Additional properties are not allowed ('a', 'b' were unexpected)", "additionalProperties", "schema", "instance"},
		{"string map", map[string]string{"total": "1", "resource_provider_generation": "0"}, "'0' is not of type 'integer'", "type", "schema['properties']['resource_provider_generation']", "instance['resource_provider_generation']"},
		{"not an object", []string{"a"}, "['a'] is not of type 'object'", "type", "schema", "instance"},
		{"nil", nil, "None is not of type 'object'", "type", "schema", "instance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(tt.instance)
			if tt.message == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want *ValidationError, got %T %v", err, err)
			}
			if ve.Message != tt.message || ve.Keyword != tt.keyword || ve.SchemaPath != tt.schema || ve.InstancePath != tt.path {
				t.Errorf("got (%q, %q, %q, %q), want (%q, %q, %q, %q)",
					ve.Message, ve.Keyword, ve.SchemaPath, ve.InstancePath,
					tt.message, tt.keyword, tt.schema, tt.path)
			}
			if !strings.HasPrefix(ve.Error(), ve.Message+"\n\nFailed validating '"+ve.Keyword+"' in "+ve.SchemaPath+":\n") {
				t.Errorf("Error() does not start with the message and schema path:\n%s", ve.Error())
			}
		})
	}
}

func TestValidatePath(t *testing.T) {
	s := MustCompile(`{"properties": {"a": {"items": {"type": "string"}}}}`)
	err := s.ValidateJSON([]byte(`{"a": ["x", 1]}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	if len(ve.Path) != 2 || ve.Path[0] != "a" || ve.Path[1] != 1 {
		t.Errorf("Path = %#v, want [a 1]", ve.Path)
	}
	if ve.InstancePath != "instance['a'][1]" || ve.SchemaPath != "schema['properties']['a']['items']" {
		t.Errorf("paths = %q, %q", ve.InstancePath, ve.SchemaPath)
	}
}

func TestValidateUnsupportedGoType(t *testing.T) {
	s := MustCompile(`{}`)
	err := s.Validate(struct{}{})
	var ve *ValidationError
	if err == nil || errors.As(err, &ve) {
		t.Fatalf("want a plain error, got %T %v", err, err)
	}
}

func TestValidateJSONMalformed(t *testing.T) {
	s := MustCompile(`{"type": "object"}`)
	for _, body := range []string{``, `{`, `{"a": 1} x`, `{"a": 1}{}`, `[1,]`, `NaN`} {
		err := s.ValidateJSON([]byte(body))
		var ve *ValidationError
		if err == nil || errors.As(err, &ve) {
			t.Errorf("%q: want a decoding error, got %T %v", body, err, err)
		}
	}
}

func TestDecodeKeepsOrderAndDuplicates(t *testing.T) {
	v, err := Decode([]byte(`{"b": 1, "a": {"y": 1, "x": 2}, "b": [1.0, 10000000000000000000000]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := repr(v), "{'b': [1.0, 10000000000000000000000], 'a': {'y': 1, 'x': 2}}"; got != want {
		t.Errorf("repr = %s, want %s", got, want)
	}
	if got, want := safeRepr(v), "{'a': {'x': 2, 'y': 1}, 'b': [1.0, 10000000000000000000000]}"; got != want {
		t.Errorf("safeRepr = %s, want %s", got, want)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, schema := range []string{
		`[]`,
		`{"type": "float"}`,
		`{"type": []}`,
		`{"minimum": "1"}`,
		`{"minLength": -1}`,
		`{"minLength": 1.5}`,
		`{"required": "a"}`,
		`{"required": ["a", "a"]}`,
		`{"properties": {"a": 1}}`,
		`{"pattern": "(?=a)"}`,
		`{"patternProperties": {"(?<=x)": {}}}`,
		`{"anyOf": []}`,
		`{"multipleOf": 0}`,
		`{"$ref": "#/$defs/missing"}`,
		`{"$ref": "http://example.com/schema"}`,
		`{"$ref": "#"}`,
		`{"allOf": [{"$ref": "#"}]}`,
		`{"$defs": {"a": {"not": {"$ref": "#/$defs/a"}}}, "properties": {"x": {"$ref": "#/$defs/a"}}}`,
		`{"$defs": {"a": {"if": {"$ref": "#/$defs/b"}}, "b": {"anyOf": [{}, {"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}`,
		`{"unevaluatedProperties": false}`,
		`{"$schema": "http://json-schema.org/draft-04/schema#"}`,
		`{"items": [{}]}`,
		`{"uniqueItems": 1}`,
		`{`,
	} {
		if _, err := Compile(schema); err == nil {
			t.Errorf("Compile(%s) succeeded, want an error", schema)
		}
	}
}

func TestMustCompilePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustCompile of a bad schema did not panic")
		}
	}()
	MustCompile(`{"type": 1}`)
}

func TestFloatRepr(t *testing.T) {
	for f, want := range map[float64]string{
		1e16: "1e+16", 1e15: "1000000000000000.0", 1e-5: "1e-05", 1e-4: "0.0001",
		1.5: "1.5", 3.40282e+38: "3.40282e+38", 1234.5e-10: "1.2345e-07", -2.5e100: "-2.5e+100",
	} {
		if got := floatRepr(f); got != want {
			t.Errorf("floatRepr(%v) = %s, want %s", f, got, want)
		}
	}
}

func TestUUIDLike(t *testing.T) {
	for s, want := range map[string]bool{
		"30e4ce5e-bd36-4d0d-9a4e-b5a1c8d0e2a1":            true,
		"30E4CE5EBD364D0D9A4EB5A1C8D0E2A1":                true,
		"{urn:uuid:30e4ce5e-bd36-4d0d-9a4e-b5a1c8d0e2a1}": true,
		"30e4ce5e-bd36-4d0d-9a4e-b5a1c8d0e2a":             false,
		"30e4ce5e-bd36-4d0d-9a4e-b5a1c8d0e2ag":            false,
		"0x4ce5ebd364d0d9a4eb5a1c8d0e2a1ab":               false,
		"":                                                false,
	} {
		if got := isUUIDLike(s); got != want {
			t.Errorf("isUUIDLike(%q) = %v, want %v", s, got, want)
		}
	}
	if isUUIDLike(int64(1)) {
		t.Error("an int is uuid-like")
	}
}

// FuzzValidate feeds arbitrary documents to Placement-like schemas: no
// input may panic, and every failure must be a *ValidationError whose
// text renders.
func FuzzValidate(f *testing.F) {
	schemas := []*Schema{
		MustCompile(inventorySchema),
		MustCompile(`{"type": "object", "minProperties": 1, "additionalProperties": false,
		  "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object",
		    "properties": {"resources": {"type": "object", "minProperties": 1,
		      "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}},
		      "additionalProperties": false},
		      "mappings": {"type": "object", "patternProperties": {"[a-zA-Z0-9_-]{1,64}": {
		        "type": "array", "minItems": 1, "items": {"type": "string", "format": "uuid"}}}},
		      "consumer_generation": {"type": ["integer", "null"]},
		      "consumer_type": {"type": "string", "pattern": "^[A-Z0-9_]+$", "minLength": 1, "maxLength": 255}},
		    "required": ["resources"], "additionalProperties": false}}}`),
		MustCompile(`{"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}],
		  "oneOf": [{"enum": [1, true, "a", [1], {"a": null}]}, {"const": [1.0]}, {"uniqueItems": true}],
		  "not": {"multipleOf": 0.5}, "if": {"type": "array"}, "then": {"contains": {"type": "integer"}, "maxContains": 2},
		  "prefixItems": [{"type": "integer"}], "items": {"$ref": "#"},
		  "propertyNames": {"maxLength": 3}, "dependentRequired": {"a": ["b"]}}`),
	}
	for _, seed := range []string{
		`{}`, `[]`, `null`, `{"total": 0}`, `{"total": 1e400, "a": [1, 2, {"b": "c"}]}`,
		`{"30e4ce5e-bd36-4d0d-9a4e-b5a1c8d0e2a1": {"resources": {"VCPU": 0}, "mappings": {"x": ["y"]}}}`,
		`[1, [1, [1.5, true]], "x\n\u2028"]`, `"` + strings.Repeat("ab ", 60) + `"`, `123456789012345678901234567890`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Decode(data); err != nil {
			return
		}
		for _, s := range schemas {
			err := s.ValidateJSON(data)
			if err == nil {
				continue
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("non-validation error for valid JSON %q: %v", data, err)
			}
			text := ve.Error()
			if !strings.HasPrefix(text, ve.Message) || !bytes.Contains([]byte(text), []byte("\n\nOn "+ve.InstancePath+":\n    ")) {
				t.Fatalf("malformed error text:\n%s", text)
			}
		}
	})
}

func TestCompileRecursionThroughInstance(t *testing.T) {
	s, err := Compile(`{"$defs": {"t": {"type": "object", "properties": {"c": {"$ref": "#/$defs/t"}}, "additionalProperties": false}}, "$ref": "#/$defs/t"}`)
	if err != nil {
		t.Fatalf("a reference that descends into the instance is fine: %v", err)
	}
	err = s.ValidateJSON([]byte(`{"c": {"c": {"d": 1}}}`))
	if err == nil || err.Error() == "" || !strings.HasPrefix(err.Error(), "Additional properties are not allowed ('d' was unexpected)") {
		t.Errorf("got %v", err)
	}
}

// FuzzCompile checks that no schema text makes Compile, or validating a
// few documents against what it compiled, panic or loop.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		inventorySchema, `true`, `{"$ref": "#"}`, `{"anyOf": [{"$ref": "#/anyOf/1"}, {"type": "null"}]}`,
		`{"items": {"$ref": "#"}, "prefixItems": [false], "contains": {"const": 1}, "minContains": 0}`,
		`{"patternProperties": {"^a$": {"multipleOf": 0.1}}, "additionalProperties": {"not": {}}}`,
		`{"if": {"minimum": 1e400}, "then": {"enum": [null]}, "else": {"maxLength": 1e2}}`,
	} {
		f.Add(seed)
	}
	docs := [][]byte{[]byte(`{"a": [1, "x", null], "b": {"c": 1.5}}`), []byte(`[[], {}, 1e400, -0.0, 123456789012345678901234567890]`), []byte(`"abc"`)}
	f.Fuzz(func(t *testing.T, schema string) {
		s, err := Compile(schema)
		if err != nil {
			return
		}
		for _, d := range docs {
			if err := s.ValidateJSON(d); err != nil {
				_ = err.Error()
			}
		}
	})
}

func TestConcurrentValidate(t *testing.T) {
	s := MustCompile(inventorySchema)
	done := make(chan string)
	for i := 0; i < 4; i++ {
		go func() {
			msg := ""
			for j := 0; j < 50; j++ {
				err := s.ValidateJSON([]byte(`{"total": 0, "resource_provider_generation": 1}`))
				msg = err.Error()
			}
			done <- msg
		}()
	}
	for i := 0; i < 4; i++ {
		if msg := <-done; !strings.HasPrefix(msg, "0 is less than the minimum of 1\n") {
			t.Errorf("got %q", msg)
		}
	}
}
