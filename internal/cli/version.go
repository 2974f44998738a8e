package cli

import (
	"fmt"
	"io"

	"github.com/hazmon/hazmon/internal/buildinfo"
	"github.com/spf13/cobra"
)

func newVersion(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print version, commit and Go version",
		Example: "  hazmon version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(stdout, buildinfo.String())
			return nil
		},
	}
}
