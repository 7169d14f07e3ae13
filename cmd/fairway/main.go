// Command fairway is the multi-tenant mail server: `fairway serve` runs the
// daemon, the other subcommands administer it through the admin API on
// <data_dir>/admin.sock (package adminapi). This package only wires the
// servers together from the config and turns commands into API calls; the
// logic lives in the packages it imports.
//
// Exit codes: 0 success; 1 the daemon refused the request, could not be
// reached, or serve failed; 2 a usage error (bad flags or arguments).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Exit codes; see the package doc.
const (
	exitOK      = 0
	exitRefused = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "fairway:", err)
	if ue := (*usageError)(nil); errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitRefused
}

// usageError marks an error in how a command was called: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// newRootCmd builds the command tree. --config and --json are persistent:
// every subcommand reads the same file and can answer in JSON.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "fairway",
		Short:         "Multi-tenant mail server with a per-tenant fair outbound queue",
		Version:       version(),
		SilenceErrors: true, // run prints the error once
		SilenceUsage:  true,
		Args:          noSubcommand,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	opts := &cliOptions{
		configPath: root.PersistentFlags().String("config", "", "config `FILE` (TOML); default: built-in defaults"),
		json:       root.PersistentFlags().Bool("json", false, "print the daemon's answer as JSON"),
	}
	root.AddCommand(newServeCmd(opts.configPath))
	addAdminCommands(root, opts)
	return root
}

// noSubcommand refuses arguments to a command that only groups others, so
// that a mistyped subcommand is a usage error rather than help and exit 0.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

// version is the module version the binary was built from, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
