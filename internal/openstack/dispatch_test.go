package openstack

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	h := Dispatch([]Method{
		{Name: "PUT", Serve: func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}},
		{Name: "GET", Serve: func(w http.ResponseWriter, r *http.Request) error {
			return Errorf(http.StatusConflict, "x.conflict", "busy")
		}},
	})
	for _, tc := range []struct {
		method     string
		wantStatus int
		wantAllow  string
		wantDetail string
	}{
		{method: "PUT", wantStatus: http.StatusNoContent},
		{method: "GET", wantStatus: http.StatusConflict, wantDetail: "busy"},
		{method: "POST", wantStatus: http.StatusMethodNotAllowed, wantAllow: "PUT, GET",
			wantDetail: "The method specified is not allowed for this resource."},
		{method: "get", wantStatus: http.StatusMethodNotAllowed, wantAllow: "PUT, GET"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/x", nil)
			r.Header.Set("Accept", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.wantStatus || w.Header().Get("Allow") != tc.wantAllow {
				t.Fatalf("%d Allow %q, want %d Allow %q (%s)", w.Code, w.Header().Get("Allow"), tc.wantStatus, tc.wantAllow, w.Body)
			}
			if tc.wantDetail == "" {
				return
			}
			var body struct {
				Errors []struct {
					Status int    `json:"status"`
					Detail string `json:"detail"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 ||
				body.Errors[0].Status != tc.wantStatus || !strings.Contains(body.Errors[0].Detail, tc.wantDetail) {
				t.Errorf("body %s (%v), want one error %d with %q", w.Body, err, tc.wantStatus, tc.wantDetail)
			}
		})
	}
}
