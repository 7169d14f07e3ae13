// Command fairway is the multi-tenant mail server: `fairway serve` runs the
// daemon, the other subcommands administer it. This package only wires the
// servers together from the config; the logic lives in the packages it
// imports.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "fairway:", err)
		os.Exit(1)
	}
}

// newRootCmd builds the command tree. --config is persistent: every
// subcommand reads the same file.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "fairway",
		Short:         "Multi-tenant mail server with a per-tenant fair outbound queue",
		Version:       version(),
		SilenceErrors: true, // main prints the error once
		SilenceUsage:  true,
	}
	configPath := root.PersistentFlags().String("config", "", "config `FILE` (TOML); default: built-in defaults")
	root.AddCommand(newServeCmd(configPath))
	return root
}

// version is the module version the binary was built from, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
