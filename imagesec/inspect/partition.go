package inspect

import (
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
// partitions are in a chain this reader does not follow yet.
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
			if mbrExtended[p.Type] {
				pt.Note = "extended partition: logical partitions are not read yet"
			}
			parts = append(parts, pt)
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
