package openstack

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// testdata/python-json-errors.jsonl: [base64 body, message or null] from
// oslo_serialization.jsonutils.loads on CPython 3.11.
func TestPythonJSONErrorMatchesPython(t *testing.T) {
	f, err := os.Open("testdata/python-json-errors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var row struct {
			body string
			msg  *string
		}
		var raw [2]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw[0], &row.body); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw[1], &row.msg); err != nil {
			t.Fatal(err)
		}
		body, err := base64.StdEncoding.DecodeString(row.body)
		if err != nil {
			t.Fatal(err)
		}
		got, bad := PythonJSONError(body)
		switch {
		case row.msg == nil && bad:
			t.Errorf("%q: Python accepts it, got %q", body, got)
		case row.msg != nil && got != *row.msg:
			t.Errorf("%q: got %q, want %q", body, got, *row.msg)
		}
		n++
	}
	if n < 50 {
		t.Fatalf("only %d cases", n)
	}
}

func TestPythonJSONErrorDeepNesting(t *testing.T) {
	if _, bad := PythonJSONError([]byte(strings.Repeat("[", 20000))); bad {
		t.Fatal("too deep documents are left to the Go decoder")
	}
	if msg, bad := PythonJSONError([]byte(strings.Repeat("[", 100))); !bad || !strings.HasPrefix(msg, "Expecting value") {
		t.Fatalf("got %q", msg)
	}
}

func FuzzPythonJSONError(f *testing.F) {
	for _, s := range []string{`{"a": [1, 2.5e-3, "x\u00e9\ud800\udc00"]}`, `{bad`, "\xff", `"\u12`, `[1,]`, `-`, `1e`, "\xef\xbb\xbf{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, bad := PythonJSONError(b)
		if bad && msg == "" {
			t.Fatal("refused without a message")
		}
		// valid UTF-8 that Go's decoder accepts is JSON to Python too (the
		// other way round differs: Python takes NaN and Infinity)
		var v any
		if utf8.Valid(b) && json.Unmarshal(b, &v) == nil && bad {
			t.Fatalf("%q: Go accepts it but Python would say %q", b, msg)
		}
	})
}
