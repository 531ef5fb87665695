package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// INISample turns the annotated YAML sample (etc/unisched.yaml) into its
// oslo-style INI twin, the way oslo-config-generator writes samples: every
// option commented out with its default ("#key = value") under its
// description, so that the file read as it is changes nothing and an
// operator uncomments what they set. Generating it from the YAML keeps one
// place for the descriptions; a test keeps etc/unisched.conf.sample equal
// to this output.
func INISample(yamlSample []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(yamlSample, &doc); err != nil {
		return nil, fmt.Errorf("parsing the YAML sample: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the YAML sample is not a mapping")
	}
	var b bytes.Buffer
	b.WriteString(iniHeader)
	b.WriteString("\n[DEFAULT]\n\n")
	b.WriteString("# oslo.log's switches: debug = true sets log.level to debug and use_json =\n# true sets log.format to json (unless [log] sets them).\n#debug = false\n\n#use_json = false\n")
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if err := writeSection(&b, root.Content[i].Value, root.Content[i], root.Content[i+1]); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

const iniHeader = `# unisched configuration in oslo.config's INI dialect: the same keys as
# etc/unisched.yaml, generated from it by ` + "`unisched config sample --format ini`" + `
# (do not edit by hand: edit the YAML sample and regenerate).
#
# Use it as /etc/unisched/unisched.conf (unisched serve --config FILE, or
# UNISCHED_CONFIG=FILE); a file ending in .conf or .ini is read as INI, one
# ending in .yaml or .yml as YAML. Every option is commented out with its
# default; environment variables UNISCHED_<SECTION>_<KEY> still override the
# file.
#
# Sections are the YAML file's top-level keys; a nested YAML map is a section
# named by its path joined with "_" ([scheduler_thresholds],
# [nova_notifications], [imagesec_glance]; "." works too). Booleans: true/false,
# yes/no, on/off, 1/0. Lists: comma-separated. Durations: 90s, 5m, 1h30m, or a
# bare number of seconds. Structured values (scheduler filters and weighers,
# agent cells): JSON, which may continue on indented lines. A line starting
# with # or ; is a comment; unknown sections and options are errors.
`

// writeSection writes one YAML mapping as an INI section, then its nested
// mappings as sections of their own.
func writeSection(b *bytes.Buffer, name string, key, m *yaml.Node) error {
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("YAML sample: %s is not a section", name)
	}
	b.WriteString("\n")
	writeComment(b, key.HeadComment)
	fmt.Fprintf(b, "[%s]\n", name)
	var nested [][3]any
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.MappingNode {
			nested = append(nested, [3]any{name + "_" + k.Value, k, v})
			continue
		}
		b.WriteString("\n")
		writeComment(b, k.HeadComment)
		if err := writeOption(b, name+"."+k.Value, k.Value, v); err != nil {
			return err
		}
		writeComment(b, k.FootComment)
	}
	for _, n := range nested {
		if err := writeSection(b, n[0].(string), n[1].(*yaml.Node), n[2].(*yaml.Node)); err != nil {
			return err
		}
	}
	return nil
}

// writeOption writes "#key = value" (continued on "#    " lines for JSON).
func writeOption(b *bytes.Buffer, path, key string, v *yaml.Node) error {
	switch v.Kind {
	case yaml.ScalarNode:
		b.WriteString(strings.TrimRight(fmt.Sprintf("#%s = %s", key, v.Value), " ") + "\n")
	case yaml.SequenceNode:
		structured := false
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				structured = true
			}
		}
		if !structured {
			var items []string
			for _, item := range v.Content {
				items = append(items, item.Value)
			}
			b.WriteString(strings.TrimRight(fmt.Sprintf("#%s = %s", key, strings.Join(items, ",")), " ") + "\n")
			return nil
		}
		// the items' comments go above, with the item's name
		var notes bytes.Buffer
		for _, item := range v.Content {
			if item.HeadComment == "" {
				continue
			}
			label := ""
			if item.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(item.Content); i += 2 {
					if item.Content[i].Value == "name" {
						label = item.Content[i+1].Value + ": "
					}
				}
			}
			for i, line := range commentLines(item.HeadComment) {
				if i == 0 {
					fmt.Fprintf(&notes, "# - %s%s\n", label, line)
				} else {
					fmt.Fprintf(&notes, "#   %s\n", line)
				}
			}
		}
		b.Write(notes.Bytes())
		for _, item := range v.Content {
			writeComment(b, item.FootComment)
		}
		writeComment(b, v.FootComment)
		fmt.Fprintf(b, "#%s = [\n", key)
		for i, item := range v.Content {
			j, err := nodeJSON(item)
			if err != nil {
				return fmt.Errorf("YAML sample: %s: %w", path, err)
			}
			sep := ","
			if i == len(v.Content)-1 {
				sep = ""
			}
			fmt.Fprintf(b, "#    %s%s\n", j, sep)
		}
		b.WriteString("#    ]\n")
	default:
		return fmt.Errorf("YAML sample: %s: unsupported value", path)
	}
	return nil
}

// commentLines returns a YAML comment's lines without their "# ".
func commentLines(c string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(c), "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimPrefix(line, "#")
		out = append(out, strings.TrimPrefix(line, " "))
	}
	return out
}

func writeComment(b *bytes.Buffer, c string) {
	if strings.TrimSpace(c) == "" {
		return
	}
	for _, line := range commentLines(c) {
		if line == "" {
			b.WriteString("#\n")
		} else {
			fmt.Fprintf(b, "# %s\n", line)
		}
	}
}

// nodeJSON writes a YAML node as one line of JSON, keeping the mapping
// order of the sample (encoding/json would sort the keys).
func nodeJSON(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.MappingNode:
		var parts []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, _ := json.Marshal(n.Content[i].Value)
			v, err := nodeJSON(n.Content[i+1])
			if err != nil {
				return "", err
			}
			parts = append(parts, string(k)+": "+v)
		}
		return "{" + strings.Join(parts, ", ") + "}", nil
	case yaml.SequenceNode:
		var parts []string
		for _, item := range n.Content {
			v, err := nodeJSON(item)
			if err != nil {
				return "", err
			}
			parts = append(parts, v)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return "", err
		}
		j, err := json.Marshal(v)
		return string(j), err
	}
	return "", fmt.Errorf("unsupported YAML node at line %d", n.Line)
}
