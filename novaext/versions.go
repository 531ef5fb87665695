package novaext

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// isVersionPath says whether path (relative to nova-api's base) is a
// version document: the root's list of versions or one version's
// document, which clients follow to find the endpoint they then use.
func isVersionPath(path string) bool {
	switch strings.TrimRight(path, "/") {
	case "", "/v2", "/v2.1":
		return true
	}
	return false
}

// maxVersionDoc bounds the version documents rewritten (a few hundred
// bytes in practice).
const maxVersionDoc = 1 << 20

// rewriteVersionLinks points links in a version document at the proxy
// when nova-api named itself in them. With the client's Host forwarded,
// nova-api already links to the proxy; it names itself when it is
// configured with [api] compute_link_prefix, or serves under a path
// prefix the proxy does not have. Keystoneauth's discovery takes the
// matching version's self link as the endpoint of every later call, so a
// link left pointing at nova-api would send the CLI around the proxy and
// no create would be seen. Other documents' links (a server's, the next
// page's) are left as nova-api wrote them: they carry the same host
// logic, and rewriting every body would break byte-for-byte pass-through.
func (p *Proxy) rewriteVersionLinks(resp *http.Response) {
	if resp.Header.Get("Content-Encoding") != "" || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return
	}
	if resp.ContentLength > maxVersionDoc {
		return
	}
	out := resp.Request
	scheme := strings.TrimSpace(strings.Split(out.Header.Get("X-Forwarded-Proto"), ",")[0])
	if scheme == "" {
		scheme = "http"
	}
	host := strings.TrimSpace(strings.Split(out.Header.Get("X-Forwarded-Host"), ",")[0])
	if host == "" {
		host = out.Host
	}
	base := scheme + "://" + host
	prefixes := []string{p.upstream.String()}
	if p.upstream.Path != "" {
		prefixes = append(prefixes, base+p.upstream.Path, p.upstream.Scheme+"://"+host+p.upstream.Path)
	}
	var alts []string
	for _, pre := range prefixes {
		if pre != base {
			alts = append(alts, regexp.QuoteMeta(pre))
		}
	}
	if len(alts) == 0 {
		return
	}
	orig := resp.Body
	body, err := io.ReadAll(io.LimitReader(orig, maxVersionDoc+1))
	if err != nil || len(body) > maxVersionDoc {
		// give back what was read in front of the rest (or of the read
		// error, which the body then ends with as the upstream's did)
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), orig), orig}
		return
	}
	orig.Close()
	re := regexp.MustCompile(`(?:` + strings.Join(alts, "|") + `)([/"])`)
	rewritten := re.ReplaceAll(body, []byte(base+"${1}"))
	resp.Body = io.NopCloser(bytes.NewReader(rewritten))
	resp.ContentLength = int64(len(rewritten))
	resp.Header.Set("Content-Length", strconv.Itoa(len(rewritten)))
}
