package jsonschema

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// golden.json is written by testdata/gen_golden.py with the real
// python-jsonschema; see that script for how to regenerate it.
type golden struct {
	Schemas map[string]string `json:"schemas"`
	Cases   []struct {
		Name   string `json:"name"`
		Schema string `json:"schema"`
		// SchemaJSON is set for the random cases, which each have their own.
		SchemaJSON string `json:"schema_json"`
		Instance   string `json:"instance"`
		Valid      bool   `json:"valid"`
		Message    string `json:"message"`
		Error      string `json:"error"`
	} `json:"cases"`
	Values []struct {
		JSON    string `json:"json"`
		Repr    string `json:"repr"`
		Pformat string `json:"pformat"`
	} `json:"values"`
}

func loadGolden(t testing.TB) *golden {
	t.Helper()
	data, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatalf("reading golden data: %v", err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("parsing golden data: %v", err)
	}
	return &g
}

func TestGoldenValidate(t *testing.T) {
	g := loadGolden(t)
	compiled := map[string]*Schema{}
	for key, text := range g.Schemas {
		s, err := Compile(text)
		if err != nil {
			t.Fatalf("compiling %s: %v", key, err)
		}
		compiled[key] = s
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			s := compiled[c.Schema]
			if c.SchemaJSON != "" {
				var err error
				if s, err = Compile(c.SchemaJSON); err != nil {
					t.Fatalf("compiling %s: %v", c.SchemaJSON, err)
				}
			}
			err := s.ValidateJSON([]byte(c.Instance))
			if c.Valid {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want *ValidationError, got %T %v", err, err)
			}
			if ve.Message != c.Message {
				t.Errorf("message:\n got %q\nwant %q", ve.Message, c.Message)
			}
			if got := ve.Error(); got != c.Error {
				t.Errorf("error text:\n--- got\n%s\n--- want\n%s", got, c.Error)
			}
		})
	}
}

func TestGoldenRepr(t *testing.T) {
	g := loadGolden(t)
	for _, v := range g.Values {
		val, err := Decode([]byte(v.JSON))
		if err != nil {
			t.Fatalf("decoding %s: %v", v.JSON, err)
		}
		if got := repr(val); got != v.Repr {
			t.Errorf("repr of %s:\n got %s\nwant %s", v.JSON, got, v.Repr)
		}
		if got := pformat(val); got != v.Pformat {
			t.Errorf("pformat of %s:\n--- got\n%s\n--- want\n%s", v.JSON, got, v.Pformat)
		}
	}
}
