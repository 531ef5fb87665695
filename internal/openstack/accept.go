package openstack

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Content negotiation as WebOb 1.8 does it, because OpenStack services
// choose both their 406s and the format of their error bodies (JSON, HTML
// or plain text) with WebOb's Accept parsing, and clients see the result.

// EffectiveAccept is the Accept header as the services' request-log
// middleware leaves it: absent, empty or "*/*" becomes application/json,
// so that errors are JSON unless a client asks otherwise.
func EffectiveAccept(r *http.Request) string {
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if accept == "" || accept == "*/*" {
		return "application/json"
	}
	return accept
}

type mediaRange struct {
	typ, sub  string // lower case
	hasParams bool   // media type parameters other than q
	q         float64
}

// AcceptableOffers returns the offers the Accept header value admits, best
// first (by q-value, then in the order offered), and whether the header is
// valid. An invalid header admits every offer, as WebOb's
// AcceptInvalidHeader does. Offers are plain "type/subtype" strings.
func AcceptableOffers(header string, offers []string) ([]string, bool) {
	ranges, ok := parseAccept(header)
	if !ok {
		return slices.Clone(offers), false
	}
	type scored struct {
		offer       string
		q           float64
		specificity int
	}
	var found []scored
	for _, offer := range offers {
		typ, sub, _ := strings.Cut(strings.ToLower(offer), "/")
		best := scored{offer: offer, specificity: 0}
		for _, mr := range ranges {
			spec := 0
			switch {
			case mr.typ == typ && mr.sub == sub:
				if mr.hasParams {
					continue // the offers carry no parameters to match
				}
				spec = 3
			case mr.sub == "*" && mr.typ == typ:
				spec = 2
			case mr.typ == "*" && mr.sub == "*":
				spec = 1
			default:
				continue
			}
			if spec > best.specificity {
				best.specificity, best.q = spec, mr.q
			}
		}
		if best.specificity > 0 && best.q > 0 {
			found = append(found, best)
		}
	}
	slices.SortStableFunc(found, func(a, b scored) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	out := make([]string, len(found))
	for i, f := range found {
		out[i] = f.offer
	}
	return out, true
}

// parseAccept parses an RFC 7231 Accept value with WebOb's grammar:
// comma-separated media ranges (empty elements allowed), each with
// parameters, an optional q weight and extension parameters after it.
func parseAccept(h string) ([]mediaRange, bool) {
	var out []mediaRange
	if h == "" {
		return out, true
	}
	p := &acceptParser{s: h}
	// the first element may be empty (a lone ","); later ones follow
	// OWS "," and may be empty too
	if !p.eat(',') {
		mr, ok := p.mediaRange()
		if !ok {
			return nil, false
		}
		out = append(out, mr)
	}
	for !p.done() {
		p.ows()
		if !p.eat(',') {
			return nil, false
		}
		save := p.pos
		p.ows()
		if p.done() {
			return out, p.pos == save
		}
		if p.peek() == ',' {
			continue
		}
		mr, ok := p.mediaRange()
		if !ok {
			return nil, false
		}
		out = append(out, mr)
	}
	return out, true
}

type acceptParser struct {
	s   string
	pos int
}

func (p *acceptParser) done() bool { return p.pos >= len(p.s) }

func (p *acceptParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.pos]
}

func (p *acceptParser) eat(c byte) bool {
	if p.peek() == c && !p.done() {
		p.pos++
		return true
	}
	return false
}

func (p *acceptParser) ows() {
	for !p.done() && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func isTchar(c byte) bool {
	switch {
	case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *acceptParser) token() (string, bool) {
	start := p.pos
	for !p.done() && isTchar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos], p.pos > start
}

func (p *acceptParser) quoted() bool {
	if !p.eat('"') {
		return false
	}
	for !p.done() {
		c := p.s[p.pos]
		switch {
		case c == '"':
			p.pos++
			return true
		case c == '\\':
			p.pos++
			if p.done() {
				return false
			}
			if n := p.s[p.pos]; n != '\t' && n != ' ' && (n < 0x21 || n == 0x7f) {
				return false
			}
			p.pos++
		case c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80:
			p.pos++
		default:
			return false
		}
	}
	return false
}

// value is token / quoted-string.
func (p *acceptParser) value() bool {
	if p.peek() == '"' {
		return p.quoted()
	}
	_, ok := p.token()
	return ok
}

func (p *acceptParser) mediaRange() (mediaRange, bool) {
	typ, ok := p.token()
	if !ok || !p.eat('/') {
		return mediaRange{}, false
	}
	sub, ok := p.token()
	if !ok {
		return mediaRange{}, false
	}
	mr := mediaRange{typ: strings.ToLower(typ), sub: strings.ToLower(sub), q: 1}
	weighted := false
	for {
		save := p.pos
		p.ows()
		if !p.eat(';') {
			p.pos = save
			return mr, true
		}
		p.ows()
		name, ok := p.token()
		if !ok {
			return mediaRange{}, false
		}
		if !p.eat('=') {
			if weighted {
				continue // an extension parameter may be a bare token
			}
			return mediaRange{}, false
		}
		if !weighted && (name == "q" || name == "Q") {
			q, ok := p.qvalue()
			if !ok {
				return mediaRange{}, false
			}
			mr.q, weighted = q, true
			continue
		}
		if !p.value() {
			return mediaRange{}, false
		}
		if !weighted {
			mr.hasParams = true
		}
	}
}

// qvalue is 0(.ddd)? or 1(.000)?.
func (p *acceptParser) qvalue() (float64, bool) {
	start := p.pos
	switch p.peek() {
	case '0':
		p.pos++
		if p.eat('.') {
			for i := 0; i < 3 && p.peek() >= '0' && p.peek() <= '9'; i++ {
				p.pos++
			}
		}
	case '1':
		p.pos++
		if p.eat('.') {
			for i := 0; i < 3 && p.peek() == '0'; i++ {
				p.pos++
			}
		}
	default:
		return 0, false
	}
	q, err := strconv.ParseFloat(strings.TrimSuffix(p.s[start:p.pos], "."), 64)
	return q, err == nil
}
