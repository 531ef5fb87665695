package testimage

import (
	"os"
	"testing"
)

// TestBuild checks the built set is complete and describes what was
// unpacked; the inspect tests check the images' contents.
func TestBuild(t *testing.T) {
	im := ForTest(t)
	if len(im.Packages) < len(BasePackages) {
		t.Fatalf("manifest lists %d packages, want at least %d", len(im.Packages), len(BasePackages))
	}
	if im.OSID != "debian" || im.OSVersionID == "" || im.DebianVersion == "" {
		t.Errorf("os-release of the root: ID %q VERSION_ID %q debian_version %q", im.OSID, im.OSVersionID, im.DebianVersion)
	}
	for _, p := range []string{im.RawGPT, im.RawMBR, im.QcowGPT, im.QcowMBR, im.WholeFS, im.NoPkgDB, im.Blank, im.Truncate} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%+v", *im)
}
