package inspect

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
)

// Filesystem names, as blkid(8) reports them.
const (
	fsExt2   = "ext2"
	fsExt3   = "ext3"
	fsExt4   = "ext4"
	fsXFS    = "xfs"
	fsBtrfs  = "btrfs"
	fsLVM    = "LVM2_member"
	fsLUKS   = "crypto_LUKS"
	fsSwap   = "swap"
	fsVFAT   = "vfat"
	fsNTFS   = "ntfs"
	fsSquash = "squashfs"
	fsISO    = "iso9660"
	fsZFS    = "zfs_member"
	fsMDRaid = "linux_raid_member"
)

// readable are the filesystems inspect can read an OS root from.
func readable(fs string) bool { return fs == fsExt2 || fs == fsExt3 || fs == fsExt4 }

// probe identifies what a partition (or the whole disk) holds from the
// signatures at fixed offsets, as blkid does for the same types. It reads
// at most the first 72 KiB. The ext label is returned when found.
func probe(r io.ReaderAt, size int64) (fs, label string) {
	n := int64(72 << 10)
	if size < n {
		n = size
	}
	buf := make([]byte, n)
	m, _ := r.ReadAt(buf, 0)
	buf = buf[:m]
	at := func(off int, magic string) bool {
		return len(buf) >= off+len(magic) && string(buf[off:off+len(magic)]) == magic
	}
	switch {
	case len(buf) >= 1024+0x78 && binary.LittleEndian.Uint16(buf[1024+0x38:]) == 0xEF53:
		sb := buf[1024:]
		compat := binary.LittleEndian.Uint32(sb[0x5C:])
		incompat := binary.LittleEndian.Uint32(sb[0x60:])
		label = strings.TrimRight(string(sb[0x78:0x78+16]), "\x00")
		// ext4 when any incompatible feature ext2/3 lack is on (extents,
		// 64bit, flex_bg, ...), ext3 with a journal, else ext2.
		switch {
		case incompat&^0x0016 != 0: // beyond filetype, recover, meta_bg
			return fsExt4, label
		case compat&0x4 != 0:
			return fsExt3, label
		default:
			return fsExt2, label
		}
	case at(0, "XFSB"):
		return fsXFS, strings.TrimRight(string(buf[108:120]), "\x00")
	case at(0, "LUKS\xba\xbe"):
		return fsLUKS, ""
	case at(0x10040, "_BHRfS_M"):
		return fsBtrfs, ""
	case at(0, "hsqs"):
		return fsSquash, ""
	case at(3, "NTFS    "):
		return fsNTFS, ""
	case at(82, "FAT32   "), at(54, "FAT12   "), at(54, "FAT16   "), at(54, "FAT     "):
		return fsVFAT, ""
	case at(32769, "CD001"):
		return fsISO, ""
	case at(4096, "\xfc\x4e\x2b\xa9"): // md superblock 1.1/1.2 at 4 KiB
		return fsMDRaid, ""
	}
	// LVM2's label can be in any of the first four sectors.
	for s := 0; s < 4; s++ {
		if at(s*512, "LABELONE") && at(s*512+24, "LVM2 001") {
			return fsLVM, ""
		}
	}
	// swap's signature ends the first page, whatever the page size.
	for _, page := range []int{4096, 8192, 16384, 65536} {
		if at(page-10, "SWAPSPACE2") || at(page-10, "SWAP-SPACE") {
			return fsSwap, ""
		}
	}
	// ZFS labels start at 0 and hold uberblocks (magic 0x00bab10c) from 128 KiB; the
	// nvlist at 16 KiB names "version"/"name" pairs.
	if len(buf) > 16<<10 && bytes.Contains(buf[16<<10:], []byte("pool_guid")) {
		return fsZFS, ""
	}
	return "", ""
}

// unsupportedFS explains a filesystem or volume that inspect cannot read.
func unsupportedFS(fs, where string) *UnsupportedError {
	e := &UnsupportedError{What: "filesystem", Name: fs, Where: where, Hint: "supported: ext2, ext3, ext4"}
	switch fs {
	case fsLVM:
		e.What, e.Name = "volume manager", "LVM2 (physical volume)"
		e.Hint = "logical volumes are not read yet; supported: ext2/3/4 on a partition or the whole disk"
	case fsLUKS:
		e.What, e.Name = "encryption", "LUKS"
		e.Hint = "encrypted volumes cannot be inspected offline without their key"
	case fsMDRaid:
		e.What, e.Name = "volume manager", "Linux software RAID (md)"
	}
	return e
}
