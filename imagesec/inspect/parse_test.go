package inspect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseOSRelease(t *testing.T) {
	cases := []struct {
		name, in string
		want     map[string]string
		err      string
	}{
		{"debian", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
			map[string]string{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "NAME": "Debian GNU/Linux", "VERSION_ID": "12", "ID": "debian"}, ""},
		{"comments and blanks", "# a comment\n\n  ID=ubuntu  \nID_LIKE=debian\n", map[string]string{"ID": "ubuntu", "ID_LIKE": "debian"}, ""},
		{"single quotes are literal", `NAME='Red Hat \"x\"'`, map[string]string{"NAME": `Red Hat \"x\"`}, ""},
		{"double-quote escapes", `NAME="a \"b\" \$c \\d \e"`, map[string]string{"NAME": `a "b" $c \d \e`}, ""},
		{"unquoted escape", `NAME=a\ b`, map[string]string{"NAME": "a b"}, ""},
		{"trailing comment", `ID=fedora # the distro`, map[string]string{"ID": "fedora"}, ""},
		{"empty value", "VARIANT=\nID=x", map[string]string{"VARIANT": "", "ID": "x"}, ""},
		{"last wins", "ID=a\nID=b", map[string]string{"ID": "b"}, ""},
		{"no newline at end", "ID=alpine", map[string]string{"ID": "alpine"}, ""},
		{"crlf", "ID=debian\r\nVERSION_ID=\"12\"\r\n", map[string]string{"ID": "debian", "VERSION_ID": "12"}, ""},
		{"unterminated double", `NAME="Debian`, nil, "line 1 (NAME): unterminated double quote"},
		{"unterminated single", "ID=x\nNAME='Debian", nil, "line 2 (NAME): unterminated single quote"},
		{"not an assignment", "ID=debian\nthis is not os-release\n", nil, "line 2: not a KEY=value assignment"},
		{"blank in value", "NAME=Debian GNU", nil, "unquoted blank in value"},
		{"binary", "\x7fELF\x02\x01\x01", nil, "not a KEY=value assignment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseOSRelease([]byte(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestOSFromRelease(t *testing.T) {
	got := osFromRelease(map[string]string{"ID_LIKE": "rhel centos fedora", "VERSION_ID": "9.4"})
	want := OS{Family: "linux", Distro: "linux", Name: "Linux", Version: "9.4", Release: "9.4", IDLike: []string{"rhel", "centos", "fedora"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v (os-release(5) defaults)", got, want)
	}
}

func TestParseDpkgStatus(t *testing.T) {
	const bash = "Package: bash\nEssential: yes\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\n" +
		"Source: bash (5.2.15-2)\nVersion: 5.2.15-2+b13\nDescription: GNU Bourne Again SHell\n Bash is an sh-compatible\n .\n shell.\n"
	cases := []struct {
		name, in string
		want     []Package
		err      string
	}{
		{"binNMU with source version", bash, []Package{{Name: "bash", Version: "5.2.15-2+b13", Architecture: "amd64", Source: "bash", SourceVersion: "5.2.15-2", Status: "installed"}}, ""},
		{"source without version, epoch kept", "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n",
			[]Package{{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64", Source: "zlib", SourceVersion: "1:1.2.13.dfsg-1", Status: "installed"}}, ""},
		{"no source field", "Package: tar\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.34\n",
			[]Package{{Name: "tar", Version: "1.34", Architecture: "amd64", Source: "tar", SourceVersion: "1.34", Status: "installed"}}, ""},
		{"removed and config-files skipped, unpacked kept, sorted",
			"Package: zz\nStatus: install ok unpacked\nArchitecture: all\nVersion: 2\n\n" +
				"Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\n" +
				"Package: never\nStatus: purge ok not-installed\nArchitecture: amd64\n\n\n" +
				"Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36\n\n" +
				"Package: libc6\nStatus: hold ok installed\nArchitecture: amd64\nVersion: 2.36\n",
			[]Package{
				{Name: "libc6", Version: "2.36", Architecture: "amd64", Source: "libc6", SourceVersion: "2.36", Status: "installed"},
				{Name: "libc6", Version: "2.36", Architecture: "i386", Source: "libc6", SourceVersion: "2.36", Status: "installed"},
				{Name: "zz", Version: "2", Architecture: "all", Source: "zz", SourceVersion: "2", Status: "unpacked"},
			}, ""},
		{"field names are case-insensitive", "package: a\nstatus: install ok installed\nversion: 1\narchitecture: all\n",
			[]Package{{Name: "a", Version: "1", Architecture: "all", Source: "a", SourceVersion: "1", Status: "installed"}}, ""},
		{"empty file", "", nil, ""},
		{"no Package", "Status: install ok installed\nVersion: 1\n", nil, "paragraph at line 1 has no Package field"},
		{"bad Status", "Package: a\nStatus: installed\nVersion: 1\n", nil, `Status "installed" is not "want flag state"`},
		{"installed without Version", "Package: a\nStatus: install ok installed\n", nil, "package a in state installed has no Version"},
		{"bad Source", "Package: a\nStatus: install ok installed\nVersion: 1\nSource: b 1.0\n", nil, `Source "b 1.0" is not "name (version)"`},
		{"junk line", "Package: a\nStatus: install ok installed\nVersion: 1\ngarbage\n", nil, `line 4: not a "Field: value" line`},
		{"leading continuation", " orphan\n", nil, "line 1: continuation line without a field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseDpkgStatus(strings.NewReader(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestProbeSignatures(t *testing.T) {
	mk := func(off int, magic string) []byte {
		b := make([]byte, 80<<10)
		copy(b[off:], magic)
		return b
	}
	cases := []struct {
		name string
		buf  []byte
		want string
	}{
		{"LVM2 label in sector 1", func() []byte { b := mk(512, "LABELONE"); copy(b[512+24:], "LVM2 001"); return b }(), fsLVM},
		{"LUKS", mk(0, "LUKS\xba\xbe"), fsLUKS},
		{"btrfs", mk(0x10040, "_BHRfS_M"), fsBtrfs},
		{"swap", mk(4086, "SWAPSPACE2"), fsSwap},
		{"vfat", mk(82, "FAT32   "), fsVFAT},
		{"xfs", mk(0, "XFSB"), fsXFS},
		{"zeros", make([]byte, 80<<10), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, _ := probe(strings.NewReader(string(c.buf)), int64(len(c.buf))); got != c.want {
				t.Errorf("probe = %q, want %q", got, c.want)
			}
		})
	}
	if e := unsupportedFS(fsLVM, "partition 3"); e.Error() != "partition 3: volume manager LVM2 (physical volume) is not supported yet (logical volumes are not read yet; supported: ext2/3/4 on a partition or the whole disk)" {
		t.Errorf("LVM message: %s", e)
	}
}

func TestNaturalLess(t *testing.T) {
	in := []string{"6.1.0-10-amd64", "6.1.0-9-amd64", "5.10.0-28-amd64", "6.1.0-10-cloud-amd64"}
	want := []string{"5.10.0-28-amd64", "6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-10-cloud-amd64"}
	for i := range in {
		for j := range in {
			ii, jj := indexOf(want, in[i]), indexOf(want, in[j])
			if naturalLess(in[i], in[j]) != (ii < jj) {
				t.Errorf("naturalLess(%q, %q) = %v", in[i], in[j], naturalLess(in[i], in[j]))
			}
		}
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestReadLogicalBadChains: an EBR chain that loops, leaves the extended
// partition or lacks its signature is an invalid image, not a hang.
func TestReadLogicalBadChains(t *testing.T) {
	const ext, size = 2048, 8192
	mk := func(ebrs map[int64][2][3]uint32) *bytes.Reader {
		disk := make([]byte, (ext+size)*512)
		for at, entries := range ebrs {
			sec := disk[at*512:]
			for i, e := range entries {
				if e[0] == 0 {
					continue
				}
				sec[446+16*i+4] = byte(e[0])
				binary.LittleEndian.PutUint32(sec[446+16*i+8:], e[1])
				binary.LittleEndian.PutUint32(sec[446+16*i+12:], e[2])
			}
			sec[510], sec[511] = 0x55, 0xAA
		}
		return bytes.NewReader(disk)
	}
	cases := []struct {
		name  string
		disk  *bytes.Reader
		err   string
		parts int
	}{
		{"two logical partitions", mk(map[int64][2][3]uint32{ext: {{0x83, 64, 100}, {0x05, 1000, 200}}, ext + 1000: {{0x82, 64, 100}, {}}}), "", 2},
		{"loop", mk(map[int64][2][3]uint32{ext: {{0x83, 64, 100}, {0x05, 1000, 200}}, ext + 1000: {{0x83, 64, 100}, {0x05, 1000, 200}}}), "loops", 0},
		{"outside", mk(map[int64][2][3]uint32{ext: {{0x83, 64, 100}, {0x05, size + 10, 200}}}), "outside the extended partition", 0},
		{"logical too large", mk(map[int64][2][3]uint32{ext: {{0x83, 64, size}, {}}}), "logical partition 5 lies outside", 0},
		{"no signature", mk(map[int64][2][3]uint32{ext: {{0x83, 64, 100}, {0x05, 1000, 200}}}), "no 0x55AA signature", 0},
	}
	for _, c := range cases {
		parts, err := readLogical(c.disk, ext, size)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrInvalidImage) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || len(parts) != c.parts || parts[1].Number != 6 || parts[1].Start != (ext+1000+64)*512 || parts[1].Type != "0x82" {
			t.Errorf("%s: %+v %v", c.name, parts, err)
		}
	}
}

func TestRPMNames(t *testing.T) {
	two := 2
	zero := 0
	evr := []struct {
		epoch         *int
		ver, rel, out string
	}{{nil, "1.2", "3.el9", "1.2-3.el9"}, {&zero, "1.2", "3", "1.2-3"}, {&two, "1.2", "3", "2:1.2-3"}, {nil, "1", "", "1"}}
	for _, c := range evr {
		if got := rpmEVR(c.epoch, c.ver, c.rel); got != c.out {
			t.Errorf("rpmEVR(%v, %q, %q) = %q, want %q", c.epoch, c.ver, c.rel, got, c.out)
		}
	}
	src := []struct{ in, name, vr string }{
		{"openssl-3.0.7-27.el9.src.rpm", "openssl", "3.0.7-27.el9"},
		{"python-pip-21.3.1-1.fc36.src.rpm", "python-pip", "21.3.1-1.fc36"},
		{"kernel-5.14.0-1.nosrc.rpm", "kernel", "5.14.0-1"},
		{"(none)", "", ""},
		{"", "", ""},
		{"noversion.src.rpm", "", ""},
		{"a-1.src.rpm", "", ""},
	}
	for _, c := range src {
		if n, vr := rpmSource(c.in); n != c.name || vr != c.vr {
			t.Errorf("rpmSource(%q) = %q, %q; want %q, %q", c.in, n, vr, c.name, c.vr)
		}
	}
}
