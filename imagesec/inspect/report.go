package inspect

import "time"

// Report is what inspecting one image found. It is what the store keeps
// and what advise (the next stage) compares with a fix feed.
type Report struct {
	Format      string    `json:"format"`       // "raw" or "qcow2"
	FileSize    int64     `json:"file_size"`    // bytes of the file as given
	VirtualSize int64     `json:"virtual_size"` // bytes of the disk it holds
	Checksum    string    `json:"checksum"`     // "sha256:<hex>" of the file as given
	InspectedAt time.Time `json:"inspected_at"`

	PartitionTable string      `json:"partition_table"` // "gpt", "mbr" or "none" (a filesystem on the whole disk)
	Partitions     []Partition `json:"partitions"`
	RootPartition  int         `json:"root_partition"` // Number of the partition holding the OS root; 0 for a whole-disk filesystem

	OS             OS        `json:"os"`
	Kernels        []string  `json:"kernels"`         // versions found in /boot and /lib/modules, sorted
	PackageFormat  string    `json:"package_format"`  // "deb" or "rpm"
	PackageManager string    `json:"package_manager"` // deb: "apt" when apt is installed, else "dpkg"; rpm: "dnf", "yum", "zypper" or "rpm"
	Packages       []Package `json:"packages"`
}

// Kernel is the newest kernel version found, "" when the image has none
// (containers' roots and minimal images boot a kernel from outside).
func (r *Report) Kernel() string {
	if len(r.Kernels) == 0 {
		return ""
	}
	return r.Kernels[len(r.Kernels)-1]
}

// Partition is one entry of the partition table, or the whole disk when
// there is none.
type Partition struct {
	Number     int    `json:"number"` // 1-based index in the table; 0 for the whole disk
	Start      int64  `json:"start"`  // bytes from the start of the disk
	Size       int64  `json:"size"`   // bytes
	Type       string `json:"type"`   // GPT type GUID or MBR type as "0x83"
	Name       string `json:"name,omitempty"`
	Bootable   bool   `json:"bootable,omitempty"`
	Filesystem string `json:"filesystem"`      // "ext4", "xfs", "LVM2_member", "swap", "vfat", ... ; "" when unknown
	Label      string `json:"label,omitempty"` // filesystem label when read
	Note       string `json:"note,omitempty"`  // why it was not read, when it was not
}

// OS is read from os-release (and, for Debian, /etc/debian_version).
type OS struct {
	Family     string   `json:"family"`            // "linux"
	Distro     string   `json:"distro"`            // os-release ID: "debian", "ubuntu", "rhel"
	IDLike     []string `json:"id_like,omitempty"` // os-release ID_LIKE
	Name       string   `json:"name"`              // NAME
	Version    string   `json:"version"`           // VERSION_ID: "12"
	Release    string   `json:"release"`           // the most precise version known: "12.15" from /etc/debian_version, else VERSION
	Codename   string   `json:"codename,omitempty"`
	PrettyName string   `json:"pretty_name"`
}

// Package is one installed package as the package database records it.
type Package struct {
	Name          string `json:"name"`
	Version       string `json:"version"` // as the database writes it: dpkg's [epoch:]upstream[-revision], rpm's [epoch:]version-release
	Architecture  string `json:"architecture"`
	Source        string `json:"source"`         // source package name (Name when the database names none)
	SourceVersion string `json:"source_version"` // source version (Version when the database names none)
	Status        string `json:"status"`         // dpkg's state: "installed", or "unpacked", "half-configured", ... (files present); rpm: "installed"
}
