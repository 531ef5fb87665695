// Package collect brings images from Glance into imagesec's inventory: it
// lists the images (gophercloud v2's image service), downloads the new or
// changed ones (by Glance's checksum) to a work directory, streamed and
// resumable, and inspects and stores each under the source
// "glance:<uuid>". An image whose checksum has not changed since it was
// last handled (inspected or failed) is skipped without a download.
package collect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
)

// Auth says how to reach Glance: an endpoint alone (a Glance without
// Keystone, or one behind a fixed token), or Keystone (AuthURL and a
// user), where Endpoint, when set, overrides the catalog's.
type Auth struct {
	Endpoint string // http://host:9292 (with or without /v2)
	Token    string // X-Auth-Token without Keystone ("" sends none)

	AuthURL           string
	Username          string
	Password          string
	UserDomainName    string
	ProjectName       string
	ProjectID         string
	ProjectDomainName string
	Region            string
	Interface         string // public, internal or admin (default public)

	// Timeout bounds each request's headers and JSON calls; downloads
	// and uploads are bounded by their context only (default 60 s).
	Timeout time.Duration
}

// NewClient returns an image service client.
func NewClient(ctx context.Context, a Auth) (*gophercloud.ServiceClient, error) {
	hc := http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: orDefault(a.Timeout, 60*time.Second),
		MaxIdleConnsPerHost:   4,
	}}
	if a.AuthURL == "" {
		if a.Endpoint == "" {
			return nil, errors.New("glance: neither an endpoint nor a Keystone auth_url is configured")
		}
		pc := &gophercloud.ProviderClient{HTTPClient: hc}
		pc.UseTokenLock()
		pc.SetToken(a.Token)
		sc := &gophercloud.ServiceClient{ProviderClient: pc, Type: "image"}
		setEndpoint(sc, a.Endpoint)
		return sc, nil
	}
	pc, err := openstack.NewClient(a.AuthURL)
	if err != nil {
		return nil, fmt.Errorf("glance: keystone %s: %w", a.AuthURL, err)
	}
	pc.HTTPClient = hc
	opts := gophercloud.AuthOptions{IdentityEndpoint: a.AuthURL, Username: a.Username, Password: a.Password,
		DomainName: a.UserDomainName, AllowReauth: true}
	if a.ProjectName != "" || a.ProjectID != "" {
		opts.Scope = &gophercloud.AuthScope{ProjectName: a.ProjectName, ProjectID: a.ProjectID, DomainName: a.ProjectDomainName}
	}
	if err := openstack.Authenticate(ctx, pc, opts); err != nil {
		return nil, fmt.Errorf("glance: authenticating at %s: %w", a.AuthURL, err)
	}
	avail := gophercloud.AvailabilityPublic
	if a.Interface != "" {
		avail = gophercloud.Availability(a.Interface)
	}
	sc, err := openstack.NewImageV2(pc, gophercloud.EndpointOpts{Region: a.Region, Availability: avail})
	if err != nil {
		return nil, fmt.Errorf("glance: finding the image endpoint: %w", err)
	}
	if a.Endpoint != "" {
		setEndpoint(sc, a.Endpoint)
	}
	return sc, nil
}

func setEndpoint(sc *gophercloud.ServiceClient, endpoint string) {
	ep := strings.TrimRight(endpoint, "/")
	ep = strings.TrimSuffix(ep, "/v2")
	sc.Endpoint = ep + "/"
	sc.ResourceBase = ep + "/v2/"
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
