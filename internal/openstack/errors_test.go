package openstack

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type testFormatter struct{}

func (testFormatter) IncludeCode(r *http.Request) bool { return VersionFrom(r.Context()).AtLeast(23) }
func (testFormatter) DefaultCode() string              { return "svc.undefined_code" }

// The expected bodies are upstream Placement 8.0.0's (WebOb 1.8.6)
// answers to the same requests.
func TestWriteErrorMatchesWebOb(t *testing.T) {
	cases := []struct {
		name        string
		method      string
		accept      string
		contentType string
		version     *Version
		err         *Error
		wantType    string
		wantBody    string
	}{
		{
			name: "404 json", method: "GET", err: &Error{Status: 404},
			wantType: "application/json",
			wantBody: `{"errors":[{"status":404,"title":"Not Found","detail":"The resource could not be found.\n\n   ","request_id":"req-1"}]}`,
		},
		{
			name: "404 html", method: "GET", accept: "text/html", err: &Error{Status: 404},
			wantType: "text/html; charset=UTF-8",
			wantBody: "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  The resource could not be found.<br /><br />\n\n\n\n </body>\n</html>",
		},
		{
			name: "404 plain when only text/plain is acceptable", method: "GET", accept: "text/plain", err: &Error{Status: 404},
			wantType: "text/plain; charset=UTF-8",
			wantBody: "404 Not Found\n\nThe resource could not be found.\n\n   ",
		},
		{
			name: "html preferred on a tie", method: "GET", accept: "application/json, text/html", err: &Error{Status: 404},
			wantType: "text/html; charset=UTF-8",
		},
		{
			name: "an unparseable Accept gets html", method: "GET", accept: "foo", err: &Error{Status: 404},
			wantType: "text/html; charset=UTF-8",
		},
		{
			name: "HEAD gets WebOb's default headers", method: "HEAD", err: &Error{Status: 405},
			wantType: "text/html; charset=UTF-8",
		},
		{
			name: "*/* means json", method: "GET", accept: "*/*", err: &Error{Status: 404},
			wantType: "application/json",
		},
		{
			name: "406 quotes the Accept header", method: "GET", accept: "text/plain", err: &Error{Status: 406, Detail: "Only application/json is provided"},
			wantType: "text/plain; charset=UTF-8",
			wantBody: "406 Not Acceptable\n\nThe resource could not be generated that was acceptable to your browser (content of type text/plain. \n\n Only application/json is provided",
		},
		{
			name: "406 html", method: "GET", accept: "text/html", err: &Error{Status: 406, Detail: "Invalid microversion: Unacceptable version header: 0.9"},
			wantType: "text/html; charset=UTF-8",
			wantBody: "<html>\n <head>\n  <title>406 Not Acceptable</title>\n </head>\n <body>\n  <h1>406 Not Acceptable</h1>\n  The resource could not be generated that was acceptable to your browser\n(content of type text/html. <br /><br />\nInvalid microversion: Unacceptable version header: 0.9\n </body>\n</html>",
		},
		{
			name: "406 json with versions", method: "GET", err: &Error{Status: 406, Detail: "Invalid microversion: Unacceptable version header: 0.9", MaxVersion: "1.39", MinVersion: "1.0"},
			wantType: "application/json",
			wantBody: `{"errors":[{"status":406,"title":"Not Acceptable","detail":"The resource could not be generated that was acceptable to your browser (content of type application/json. \n\n Invalid microversion: Unacceptable version header: 0.9","request_id":"req-1","max_version":"1.39","min_version":"1.0"}]}`,
		},
		{
			name: "405 quotes the method", method: "DELETE", err: &Error{Status: 405, Detail: "The method specified is not allowed for this resource."},
			wantType: "application/json",
			wantBody: `{"errors":[{"status":405,"title":"Method Not Allowed","detail":"The method DELETE is not allowed for this resource. \n\n The method specified is not allowed for this resource.","request_id":"req-1"}]}`,
		},
		{
			name: "415 quotes the content type", method: "PUT", contentType: "text/plain", err: &Error{Status: 415, Detail: "The media type text/plain is not supported, use application/json"},
			wantType: "application/json",
			wantBody: `{"errors":[{"status":415,"title":"Unsupported Media Type","detail":"The request media type text/plain is not supported by this server. \n\n The media type text/plain is not supported, use application/json","request_id":"req-1"}]}`,
		},
		{
			name: "415 html", method: "PUT", accept: "text/html", contentType: "text/plain", err: &Error{Status: 415, Detail: "The media type text/plain is not supported, use application/json"},
			wantType: "text/html; charset=UTF-8",
			wantBody: "<html>\n <head>\n  <title>415 Unsupported Media Type</title>\n </head>\n <body>\n  <h1>415 Unsupported Media Type</h1>\n  The request media type text/plain is not supported by this server.\n<br /><br />\nThe media type text/plain is not supported, use application/json\n </body>\n</html>",
		},
		{
			name: "401 bare json", method: "GET", err: ErrUnauthorized,
			wantType: "application/json",
			wantBody: `{"message":"This server could not verify that you are authorized to access the document you requested. Either you supplied the wrong credentials (e.g., bad password), or your browser does not understand how to supply the credentials required.<br /><br />\n\n\n","code":"401 Unauthorized","title":"Unauthorized"}`,
		},
		{
			name: "400 html escapes like Python", method: "GET", accept: "text/html",
			err:      &Error{Status: 400, Detail: `invalid literal for int() with base 10: 'pony' & "é"`},
			wantType: "text/html; charset=UTF-8",
			wantBody: "<html>\n <head>\n  <title>400 Bad Request</title>\n </head>\n <body>\n  <h1>400 Bad Request</h1>\n  The server could not comply with the request since it is either malformed or otherwise incorrect.<br /><br />\ninvalid literal for int() with base 10: &#x27;pony&#x27; &amp; &quot;&#233;&quot;\n\n\n </body>\n</html>",
		},
		{
			name: "code from the formatter's version", method: "GET", version: &Version{1, 23}, err: &Error{Status: 409, Detail: "x", Code: "svc.conflict"},
			wantType: "application/json",
			wantBody: `{"errors":[{"status":409,"title":"Conflict","detail":"There was a conflict when trying to complete your request.\n\n x  ","code":"svc.conflict","request_id":"req-1"}]}`,
		},
		{
			name: "default code", method: "GET", version: &Version{1, 23}, err: &Error{Status: 404},
			wantType: "application/json",
			wantBody: `{"errors":[{"status":404,"title":"Not Found","detail":"The resource could not be found.\n\n   ","code":"svc.undefined_code","request_id":"req-1"}]}`,
		},
		{
			name: "line breaks and tags in details are flattened as strip_tags does", method: "GET",
			err:      &Error{Status: 400, Detail: "a\nb <i>c</i>\r\nd"},
			wantType: "application/json",
			wantBody: `{"errors":[{"status":400,"title":"Bad Request","detail":"The server could not comply with the request since it is either malformed or otherwise incorrect.\n\n a b c d  ","request_id":"req-1"}]}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/x", nil)
			if tc.accept != "" {
				r.Header.Set("Accept", tc.accept)
			}
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			ctx := context.WithValue(r.Context(), requestIDKey{}, "req-1")
			ctx = context.WithValue(ctx, formatterKey{}, ErrorFormatter(testFormatter{}))
			if tc.version != nil {
				ctx = WithVersion(ctx, *tc.version)
			}
			w := httptest.NewRecorder()
			WriteError(w, r.WithContext(ctx), tc.err)
			if w.Code != tc.err.Status {
				t.Errorf("status %d, want %d", w.Code, tc.err.Status)
			}
			if got := w.Header().Get("Content-Type"); got != tc.wantType {
				t.Errorf("content type %q, want %q", got, tc.wantType)
			}
			if tc.wantBody == "" {
				return
			}
			got := w.Body.String()
			if tc.wantType == "application/json" {
				got = strings.TrimSuffix(got, "\n")
				var a, b any
				if json.Unmarshal([]byte(got), &a) != nil || json.Unmarshal([]byte(tc.wantBody), &b) != nil {
					t.Fatalf("not JSON: %q", got)
				}
			}
			if got != tc.wantBody {
				t.Errorf("body\n%q\nwant\n%q", got, tc.wantBody)
			}
		})
	}
}

func TestWriteErrorHidesInternalErrors(t *testing.T) {
	r := httptest.NewRequest("GET", "/x", nil)
	w := httptest.NewRecorder()
	WriteError(w, r, errSecret)
	if w.Code != 500 || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("got %d %q", w.Code, w.Body.String())
	}
}

var errSecret = &secretError{}

type secretError struct{}

func (*secretError) Error() string { return "secret connection string" }

func TestEscapedErrorDropsVersionVary(t *testing.T) {
	r := httptest.NewRequest("GET", "/x", nil)
	w := httptest.NewRecorder()
	w.Header().Add("Vary", "Origin")
	w.Header().Add("Vary", "openstack-api-version")
	WriteError(w, r, &Error{Status: 403, Escaped: true})
	if got := w.Header().Values("Vary"); len(got) != 1 || got[0] != "Origin" {
		t.Fatalf("Vary %q", got)
	}
}
