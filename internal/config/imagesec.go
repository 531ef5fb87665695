package config

import "time"

// Imagesec configures the image security server (issue 6): where images
// are collected from and published to (Glance), and its jobs.
type Imagesec struct {
	// WorkDir receives downloads, raw copies and upgrades ("" = the
	// system temp dir's unisched-imagesec).
	WorkDir string `mapstructure:"work_dir"`
	// CollectInterval runs a collection from Glance this often in serve
	// (0: only on request).
	CollectInterval time.Duration `mapstructure:"collect_interval"`
	// DiskFormats are the Glance disk formats collected.
	DiskFormats []string `mapstructure:"disk_formats"`
	// JobParallelism bounds the image jobs running at once.
	JobParallelism int `mapstructure:"job_parallelism"`
	// DockerHost runs upgrade sandboxes ("": $DOCKER_HOST, then Docker's
	// default socket); SandboxImage is their helper image ("": busybox
	// imported from Debian's busybox-static); DebCacheDir keeps the
	// downloaded .debs ("": the user cache dir's unisched/debs).
	DockerHost   string       `mapstructure:"docker_host"`
	SandboxImage string       `mapstructure:"sandbox_image"`
	DebCacheDir  string       `mapstructure:"deb_cache_dir"`
	Glance       GlanceClient `mapstructure:"glance"`
}

// GlanceClient is how to reach Glance: Keystone (auth_url and the
// credentials; the image endpoint from the catalog, or endpoint when set)
// or a fixed endpoint with an optional token. Neither: no Glance (collect
// and publish refuse).
type GlanceClient struct {
	AuthURL           string        `mapstructure:"auth_url"`
	Username          string        `mapstructure:"username"`
	Password          string        `mapstructure:"password"`
	ProjectName       string        `mapstructure:"project_name"`
	UserDomainName    string        `mapstructure:"user_domain_name"`
	ProjectDomainName string        `mapstructure:"project_domain_name"`
	RegionName        string        `mapstructure:"region_name"`
	Interface         string        `mapstructure:"interface"`
	Endpoint          string        `mapstructure:"endpoint"`
	Token             string        `mapstructure:"token"`
	Timeout           time.Duration `mapstructure:"timeout"`
}

// Configured says whether a Glance is configured.
func (g GlanceClient) Configured() bool { return g.AuthURL != "" || g.Endpoint != "" }

var imagesecDefaults = map[string]any{
	"imagesec.work_dir":                   "",
	"imagesec.collect_interval":           time.Duration(0),
	"imagesec.disk_formats":               []string{"qcow2", "raw"},
	"imagesec.job_parallelism":            2,
	"imagesec.docker_host":                "",
	"imagesec.sandbox_image":              "",
	"imagesec.deb_cache_dir":              "",
	"imagesec.glance.auth_url":            "",
	"imagesec.glance.username":            "",
	"imagesec.glance.password":            "",
	"imagesec.glance.project_name":        "",
	"imagesec.glance.user_domain_name":    "Default",
	"imagesec.glance.project_domain_name": "Default",
	"imagesec.glance.region_name":         "",
	"imagesec.glance.interface":           "public",
	"imagesec.glance.endpoint":            "",
	"imagesec.glance.token":               "",
	"imagesec.glance.timeout":             time.Minute,
}

// init adds imagesec's keys to the defaults (kept in this file so the
// section stays apart from serve's others).
func init() {
	for k, v := range imagesecDefaults {
		defaults[k] = v
	}
}
