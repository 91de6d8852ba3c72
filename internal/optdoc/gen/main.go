// Command gen writes internal/cli/optdocs_gen.go (the help of cmd/tern's
// option flags) from the doc comments of the option structs. Run it with
// go generate ./cmd/tern.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ternmq/tern/internal/optdoc"
)

func main() {
	root := flag.String("root", "../..", "module root")
	out := flag.String("out", "optdocs_gen.go", "file to write")
	flag.Parse()
	src, err := optdoc.Generate(*root)
	if err == nil {
		err = os.WriteFile(*out, src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "optdoc:", err)
		os.Exit(1)
	}
}
