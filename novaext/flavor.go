package novaext

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/unisched/unisched/bridge/ledger"
)

// flavorMicroversion is the first compute microversion whose flavor
// document embeds extra_specs (2.61), so one GET answers everything.
const flavorMicroversion = "2.61"

// lookupFlavor asks nova-api for the create's flavor with the caller's
// own credentials (a private flavor is visible to its projects only, and
// the proxy holds no credentials of its own). A nova-api older than 2.61
// answers 406; then the flavor and its os-extra_specs are read apart.
func (p *Proxy) lookupFlavor(ctx context.Context, r *http.Request, route createRoute, requestID, ref string) (*ledger.IntentFlavor, error) {
	id := flavorID(ref)
	if id == "" {
		return nil, fmt.Errorf("flavorRef %q names no flavor", ref)
	}
	base := p.upstream.String() + "/" + route.version + "/"
	if route.project != "" {
		base += url.PathEscape(route.project) + "/"
	}
	base += "flavors/" + url.PathEscape(id)

	var doc struct {
		Flavor *struct {
			ID         string            `json:"id"`
			Name       string            `json:"name"`
			VCPUs      int               `json:"vcpus"`
			RAM        int64             `json:"ram"`
			Disk       int64             `json:"disk"`
			Ephemeral  int64             `json:"OS-FLV-EXT-DATA:ephemeral"`
			Swap       json.RawMessage   `json:"swap"`
			ExtraSpecs map[string]string `json:"extra_specs"`
		} `json:"flavor"`
	}
	status, err := p.getJSON(ctx, r, base, requestID, flavorMicroversion, &doc)
	if status == http.StatusNotAcceptable {
		status, err = p.getJSON(ctx, r, base, requestID, "", &doc)
		if err == nil && doc.Flavor != nil {
			var specs struct {
				ExtraSpecs map[string]string `json:"extra_specs"`
			}
			if _, err = p.getJSON(ctx, r, base+"/os-extra_specs", requestID, "", &specs); err == nil {
				doc.Flavor.ExtraSpecs = specs.ExtraSpecs
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if doc.Flavor == nil {
		return nil, fmt.Errorf("flavor %s: no flavor in nova-api's answer (status %d)", id, status)
	}
	f := doc.Flavor
	swap := count(f.Swap) // "" (no swap) before 2.75, an integer after
	return &ledger.IntentFlavor{ID: f.ID, Name: f.Name, VCPUs: f.VCPUs, RAMMB: f.RAM, DiskGB: f.Disk,
		EphemeralGB: f.Ephemeral, SwapMB: int64(swap), ExtraSpecs: f.ExtraSpecs}, nil
}

// flavorID is the id of a flavorRef, which may be a link to the flavor.
func flavorID(ref string) string {
	ref = strings.TrimRight(strings.TrimSpace(ref), "/")
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		ref = ref[i+1:]
	}
	if id, err := url.PathUnescape(ref); err == nil {
		return id
	}
	return ref
}

// getJSON GETs u from nova-api with the client's auth headers and decodes
// a 200 answer into dst. The status is returned whatever happens.
func (p *Proxy) getJSON(ctx context.Context, in *http.Request, u, requestID, microversion string, dst any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("flavor lookup: %w", err)
	}
	for _, h := range []string{"X-Auth-Token", "X-Auth-Project-Id", "X-Auth-User"} {
		if v := in.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "unisched-nova-proxy")
	req.Header.Set(HeaderRequestID, requestID)
	if microversion != "" {
		req.Header.Set("OpenStack-API-Version", "compute "+microversion)
		req.Header.Set("X-OpenStack-Nova-API-Version", microversion)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("flavor lookup: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("flavor lookup: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("flavor lookup: nova-api answered %d", resp.StatusCode)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return resp.StatusCode, fmt.Errorf("flavor lookup: decoding the answer: %w", err)
	}
	return resp.StatusCode, nil
}
