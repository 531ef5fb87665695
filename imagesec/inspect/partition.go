package inspect

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/partition"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

const sectorSize = 512

// mbrExtended are MBR types of extended partitions, whose logical
// partitions are in a chain of extended boot records (readLogical).
var mbrExtended = map[mbr.Type]bool{0x05: true, 0x0f: true, 0x85: true}

// readPartitions reads the GPT (preferred, as the kernel does when the MBR
// is protective) or MBR partition table. With neither, the table is "none"
// and the caller looks for a filesystem on the whole disk.
func readPartitions(f backend.File, size int64) (table string, parts []Partition, err error) {
	t, err := partition.Read(f, sectorSize, sectorSize)
	if err != nil {
		return "none", nil, nil
	}
	switch t := t.(type) {
	case *gpt.Table:
		for i, p := range t.Partitions {
			if p.Type == gpt.Unused {
				continue
			}
			parts = append(parts, Partition{
				Number: i + 1, Start: int64(p.Start) * sectorSize,
				Size: (int64(p.End) - int64(p.Start) + 1) * sectorSize,
				Type: strings.ToUpper(string(p.Type)), Name: p.Name,
			})
		}
		table = "gpt"
	case *mbr.Table:
		for i, p := range t.Partitions {
			if p.Type == mbr.Empty {
				continue
			}
			pt := Partition{
				Number: i + 1, Start: int64(p.Start) * sectorSize, Size: int64(p.Size) * sectorSize,
				Type: fmt.Sprintf("0x%02x", byte(p.Type)), Bootable: p.Bootable,
			}
			parts = append(parts, pt)
			if mbrExtended[p.Type] {
				pt.Note = "extended partition"
				parts[len(parts)-1] = pt
				logical, err := readLogical(f, int64(p.Start), int64(p.Size))
				if err != nil {
					return "", nil, err
				}
				parts = append(parts, logical...)
			}
		}
		table = "mbr"
	default:
		return "", nil, fmt.Errorf("reading partition table: unexpected table %T", t)
	}
	for _, p := range parts {
		if p.Start < 0 || p.Size <= 0 || p.Start+p.Size > size {
			return "", nil, invalid("partition %d (bytes %d+%d) lies outside the %d-byte disk", p.Number, p.Start, p.Size, size)
		}
	}
	return table, parts, nil
}

// section is a partition's bytes as an io.ReaderAt.
func section(r io.ReaderAt, p Partition) *io.SectionReader {
	return io.NewSectionReader(r, p.Start, p.Size)
}

// maxLogical bounds the EBR chain, so a chain that loops ends.
const maxLogical = 128

// readLogical follows the chain of extended boot records of the extended
// partition at sector ext (size sectors long). Each EBR holds the logical
// partition (start relative to the EBR) and the link to the next EBR
// (start relative to the extended partition). Logical partitions are
// numbered from 5, as Linux does.
func readLogical(r io.ReaderAt, ext, size int64) ([]Partition, error) {
	var parts []Partition
	ebr := ext
	seen := map[int64]bool{}
	n := 5
	for {
		if seen[ebr] || len(seen) >= maxLogical {
			return nil, invalid("the extended partition's boot record chain loops or exceeds %d entries", maxLogical)
		}
		seen[ebr] = true
		if ebr < ext || ebr >= ext+size {
			return nil, invalid("an extended boot record at sector %d lies outside the extended partition", ebr)
		}
		sec := make([]byte, sectorSize)
		if _, err := r.ReadAt(sec, ebr*sectorSize); err != nil {
			return nil, invalid("reading the extended boot record at sector %d: %v", ebr, err)
		}
		if sec[510] != 0x55 || sec[511] != 0xAA {
			return nil, invalid("the extended boot record at sector %d has no 0x55AA signature", ebr)
		}
		entry := func(i int) (typ byte, boot bool, start, count int64) {
			e := sec[446+16*i:]
			return e[4], e[0] == 0x80, int64(binary.LittleEndian.Uint32(e[8:])), int64(binary.LittleEndian.Uint32(e[12:]))
		}
		if typ, boot, start, count := entry(0); typ != 0 && count > 0 {
			if ebr+start+count > ext+size {
				return nil, invalid("logical partition %d lies outside the extended partition", n)
			}
			parts = append(parts, Partition{
				Number: n, Start: (ebr + start) * sectorSize, Size: count * sectorSize,
				Type: fmt.Sprintf("0x%02x", typ), Bootable: boot,
			})
			n++
		}
		typ, _, next, _ := entry(1)
		if typ == 0 || next == 0 {
			return parts, nil
		}
		ebr = ext + next
	}
}
