package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// printUsage writes tern -h: the flags by group, each with its -config
// key and its help, wrapped.
func printUsage(w io.Writer, fs *flag.FlagSet, groups []flagGroup) {
	fmt.Fprint(w, `Usage: tern [flags]
       tern passwd [-c | -D] [-b] [-I ITERATIONS] FILE USER [PASSWORD]

Tern, an MQTT broker. Flags override the -config file, which overrides
the -c file. Every flag but -c, -config and -hash-password is also a
-config key: its name with _ for - (max_packet_size 2097152). Durations
are Go durations (30s, 5m, 1h30m). SIGHUP reloads the users and ACL, the
TLS certificates and the log file.
`)
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.flags {
			f := fs.Lookup(name)
			if f == nil {
				continue
			}
			kind, usage := flag.UnquoteUsage(f)
			field := ""
			if fv, ok := f.Value.(*fieldValue); ok {
				kind, field = fv.kind, fv.field
			}
			line := "  -" + f.Name
			if kind != "" && kind != "bool" {
				line += " " + kind
			}
			if !notInConfig[f.Name] {
				line += "    (config: " + configKey(f.Name) + ")"
			}
			fmt.Fprintln(w, line)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
				usage += " (default " + f.DefValue + ")"
			}
			for i, p := range strings.Split(usage, "\n\n") {
				if i > 0 {
					fmt.Fprintln(w)
				}
				for _, l := range wrap(p, 72) {
					fmt.Fprintln(w, "      "+l)
				}
			}
			if field != "" {
				fmt.Fprintln(w, "      ("+field+")")
			}
		}
	}
}

// wrap breaks text into lines of at most width characters, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	var cur strings.Builder
	for _, word := range strings.Fields(text) {
		if cur.Len() > 0 && cur.Len()+1+len(word) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(word)
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}
