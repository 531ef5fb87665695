package advise

import (
	"os/exec"
	"strings"
	"testing"
)

// rpmVectors are rpm's own rpmvercmp test vectors (tests/rpmvercmp.at).
var rpmVectors = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0}, {"1.0", "2.0", -1}, {"2.0", "1.0", 1},
	{"2.0.1", "2.0.1", 0}, {"2.0", "2.0.1", -1}, {"2.0.1", "2.0", 1},
	{"2.0.1a", "2.0.1a", 0}, {"2.0.1a", "2.0.1", 1}, {"2.0.1", "2.0.1a", -1},
	{"5.5p1", "5.5p1", 0}, {"5.5p1", "5.5p2", -1}, {"5.5p2", "5.5p1", 1},
	{"5.5p10", "5.5p10", 0}, {"5.5p1", "5.5p10", -1}, {"5.5p10", "5.5p1", 1},
	{"10xyz", "10.1xyz", -1}, {"10.1xyz", "10xyz", 1},
	{"xyz10", "xyz10", 0}, {"xyz10", "xyz10.1", -1}, {"xyz10.1", "xyz10", 1},
	{"xyz.4", "xyz.4", 0}, {"xyz.4", "8", -1}, {"8", "xyz.4", 1}, {"xyz.4", "2", -1}, {"2", "xyz.4", 1},
	{"5.5p2", "5.6p1", -1}, {"5.6p1", "5.5p2", 1}, {"5.6p1", "6.5p1", -1}, {"6.5p1", "5.6p1", 1},
	{"6.0.rc1", "6.0", 1}, {"6.0", "6.0.rc1", -1},
	{"10b2", "10a1", 1}, {"10a2", "10b2", -1},
	{"1.0aa", "1.0aa", 0}, {"1.0a", "1.0aa", -1}, {"1.0aa", "1.0a", 1},
	{"10.0001", "10.0001", 0}, {"10.0001", "10.1", 0}, {"10.1", "10.0001", 0},
	{"10.0001", "10.0039", -1}, {"10.0039", "10.0001", 1},
	{"4.999.9", "5.0", -1}, {"5.0", "4.999.9", 1},
	{"20101121", "20101121", 0}, {"20101121", "20101122", -1}, {"20101122", "20101121", 1},
	{"2_0", "2_0", 0}, {"2.0", "2_0", 0}, {"2_0", "2.0", 0},
	{"a", "a", 0}, {"a+", "a+", 0}, {"a+", "a_", 0}, {"a_", "a+", 0},
	{"+a", "+a", 0}, {"+a", "_a", 0}, {"_a", "+a", 0},
	{"+_", "+_", 0}, {"_+", "+_", 0}, {"_+", "_+", 0}, {"+", "_", 0}, {"_", "+", 0},
	{"1.0~rc1", "1.0~rc1", 0}, {"1.0~rc1", "1.0", -1}, {"1.0", "1.0~rc1", 1},
	{"1.0~rc1", "1.0~rc2", -1}, {"1.0~rc2", "1.0~rc1", 1},
	{"1.0~rc1~git123", "1.0~rc1~git123", 0}, {"1.0~rc1~git123", "1.0~rc1", -1}, {"1.0~rc1", "1.0~rc1~git123", 1},
	{"1.0^", "1.0^", 0}, {"1.0^", "1.0", 1}, {"1.0", "1.0^", -1},
	{"1.0^git1", "1.0^git1", 0}, {"1.0^git1", "1.0", 1}, {"1.0", "1.0^git1", -1},
	{"1.0^git1", "1.0^git2", -1}, {"1.0^git2", "1.0^git1", 1},
	{"1.0^git1", "1.01", -1}, {"1.01", "1.0^git1", 1},
	{"1.0^20160101", "1.0^20160101", 0}, {"1.0^20160101", "1.0.1", -1}, {"1.0.1", "1.0^20160101", 1},
	{"1.0^20160101^git1", "1.0^20160101^git1", 0}, {"1.0^20160102", "1.0^20160101^git1", 1},
	{"1.0^20160101^git1", "1.0^20160102", -1},
	{"1.0~rc1^git1", "1.0~rc1^git1", 0}, {"1.0~rc1^git1", "1.0~rc1", 1}, {"1.0~rc1", "1.0~rc1^git1", -1},
	{"1.0^git1~pre", "1.0^git1~pre", 0}, {"1.0^git1", "1.0^git1~pre", 1}, {"1.0^git1~pre", "1.0^git1", -1},
	{"1b.fc17", "1b.fc17", 0}, {"1b.fc17", "1.fc17", -1}, {"1.fc17", "1b.fc17", 1},
	{"1g.fc17", "1g.fc17", 0}, {"1g.fc17", "1.fc17", 1}, {"1.fc17", "1g.fc17", -1},
}

func TestRPMVerCmp(t *testing.T) {
	for _, v := range rpmVectors {
		if got := RPMVerCmp(v.a, v.b); got != v.want {
			t.Errorf("RPMVerCmp(%q, %q) = %d, want %d", v.a, v.b, got, v.want)
		}
	}
}

func TestCompareRPMEVR(t *testing.T) {
	for _, v := range []struct {
		a, b string
		want int
	}{
		{"2:1.2.3-4", "1.2.3-4", 1}, {"0:1.0-1", "1.0-1", 0}, {"1:0.1-1", "0:9.9-9", 1},
		{"1.2.3-4.el9", "1.2.3-10.el9", -1}, {"1.2.3", "1.2.3-7", 0}, {"0.9-1.el9", "0.9-1.el9_1", -1},
	} {
		got, err := Compare(FormatRPM, v.a, v.b)
		if err != nil || got != v.want {
			t.Errorf("Compare(rpm, %q, %q) = %d, %v; want %d", v.a, v.b, got, err, v.want)
		}
	}
}

// debVectors follow dpkg's own version tests (lib/dpkg/t/t-version.c) and
// the cases of deb-version(7).
var debVectors = []struct {
	a, b string
	want int
}{
	{"0", "0", 0}, {"0", "00", 0}, {"1", "0", 1}, {"1.1", "1.0", 1},
	{"1:0", "0:0", 1}, {"0:1.0", "1.0", 0}, {"1:0.4", "10.3", 1},
	{"1.0", "1.0-0", 0}, {"1.0-1", "1.0-2", -1}, {"1.0-1", "1.0", 1},
	{"1.0~rc1", "1.0", -1}, {"1.0~rc1", "1.0~rc2", -1}, {"1.0~~", "1.0~", -1}, {"1.0~", "1.0", -1},
	{"1.0~~a", "1.0~~", 1}, {"1.0a", "1.0", 1}, {"1.0a", "1.0+", -1}, {"1.0+", "1.0.", -1},
	{"1.2.13.dfsg-1", "1.2.13.dfsg-1+unisched1", -1}, {"1:1.2.13.dfsg-1", "1.2.13.dfsg-1+unisched1", 1},
	{"5.2.15-2+b2", "5.2.15-2", 1}, {"5.2.15-2+b2", "5.2.15-2+deb12u1", -1},
	{"1.34+dfsg-1.2+deb12u1", "1.34+dfsg-1.2+deb12u1+unisched1", -1},
	{"0.5.12-2~old1", "0.5.12-2", -1}, {"2.36-9+deb12u4", "2.36-9+deb12u10", -1},
	{"1.0-1ubuntu1", "1.0-1", 1}, {"7.6q-19", "7.6-19", 1},
	{"1.2.3-1~bpo12+1", "1.2.3-1", -1}, {"1.0-a", "1.0-1", 1}, {"1.0-a~", "1.0-a", -1},
}

func TestCompareDeb(t *testing.T) {
	// The host's dpkg, when there is one, must agree with every vector
	// (it is only asked, never given guest files).
	_, err := exec.LookPath("dpkg")
	hostDpkg := err == nil
	for _, v := range debVectors {
		got, err := Compare(FormatDeb, v.a, v.b)
		if err != nil || got != v.want {
			t.Errorf("Compare(deb, %q, %q) = %d, %v; want %d", v.a, v.b, got, err, v.want)
		}
		if hostDpkg {
			op := map[int]string{-1: "lt", 0: "eq", 1: "gt"}[v.want]
			if err := exec.Command("dpkg", "--compare-versions", v.a, op, v.b).Run(); err != nil {
				t.Errorf("dpkg --compare-versions %s %s %s: %v (the vector is wrong)", v.a, op, v.b, err)
			}
		}
	}
	for _, bad := range []string{"", "1:", "a:1.0", "1.0 2", "1.18.36:5.4"} {
		if _, err := Compare(FormatDeb, bad, "1.0"); err == nil {
			t.Errorf("Compare(deb, %q, 1.0): no error", bad)
		}
	}
	if _, err := Compare("apk", "1", "2"); err == nil || !strings.Contains(err.Error(), "apk") {
		t.Errorf("Compare(apk): %v", err)
	}
}

// TestRPMHostAgrees asks the host's rpm (its Lua rpm.vercmp) about the
// vectors when rpm is installed.
func TestRPMHostAgrees(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm not installed")
	}
	var lua strings.Builder
	for _, v := range rpmVectors {
		lua.WriteString("print(rpm.vercmp('" + v.a + "', '" + v.b + "')) print(' ')\n")
	}
	out, err := exec.Command("rpm", "--eval", "%{lua:"+lua.String()+"}").Output()
	if err != nil {
		t.Skipf("rpm --eval lua: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(rpmVectors) {
		t.Fatalf("rpm printed %d results for %d vectors", len(lines), len(rpmVectors))
	}
	for i, v := range rpmVectors {
		want := map[int]string{-1: "-1", 0: "0", 1: "1"}[v.want]
		if lines[i] != want {
			t.Errorf("host rpm: vercmp(%q, %q) = %s, vector says %s", v.a, v.b, lines[i], want)
		}
	}
}
