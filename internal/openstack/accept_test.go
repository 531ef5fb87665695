package openstack

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// testdata/webob-accept.jsonl holds WebOb 1.8.6's verdicts: each line is
// [header, valid, acceptable of (text/html, application/json), acceptable
// of (application/json)], computed with webob.acceptparse.create_accept_header.
func TestAcceptableOffersMatchesWebOb(t *testing.T) {
	f, err := os.Open("testdata/webob-accept.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var row [4]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		var header string
		var valid bool
		var both, only []string
		for i, dst := range []any{&header, &valid, &both, &only} {
			if err := json.Unmarshal(row[i], dst); err != nil {
				t.Fatal(err)
			}
		}
		got, gotValid := AcceptableOffers(header, []string{"text/html", "application/json"})
		if gotValid != valid || !slices.Equal(got, both) && len(got)+len(both) > 0 {
			t.Errorf("%q: got %v valid=%v, want %v valid=%v", header, got, gotValid, both, valid)
		}
		gotOnly, _ := AcceptableOffers(header, []string{"application/json"})
		if !slices.Equal(gotOnly, only) && len(gotOnly)+len(only) > 0 {
			t.Errorf("%q (json only): got %v, want %v", header, gotOnly, only)
		}
		n++
	}
	if n < 30 {
		t.Fatalf("only %d cases", n)
	}
}

func FuzzAcceptableOffers(f *testing.F) {
	for _, s := range []string{"", "*/*", "text/html;q=0.5, application/json", "a/b;c=\"d\\\"e\";q=0.1;x", ",,", "x/y;q=1."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got, valid := AcceptableOffers(h, []string{"text/html", "application/json"})
		if !valid && len(got) != 2 {
			t.Fatalf("invalid header %q must admit every offer, got %v", h, got)
		}
		if len(got) > 2 {
			t.Fatalf("%q: more offers than offered: %v", h, got)
		}
	})
}
