package cli

import (
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hazmon/hazmon/configs"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/spf13/cobra"
)

// newConfig is `hazmon config show|example|keys`.
func newConfig(stdout io.Writer) *cobra.Command {
	cfgCmd := &cobra.Command{
		Use:   "config",
		Short: "Configuration tools: the effective config, examples, every key",
		Example: "  hazmon config show --config /etc/hazmon/hazmon.yaml\n" +
			"  hazmon config example coal-face > hazmon.yaml\n  hazmon config keys | less",
	}
	cfgCmd.AddCommand(newConfigShow(stdout), newConfigExample(stdout), newConfigKeys(stdout))
	return cfgCmd
}

func newConfigShow(stdout io.Writer) *cobra.Command {
	var path string
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective config (defaults applied), secrets redacted",
		Long: "Show loads and validates the file like the agent does and prints the result\n" +
			"as YAML, every default filled in. Secrets are never printed: the MQTT password\n" +
			"stays in its password_file (only the path is shown) and a password inside a\n" +
			"broker URL is replaced by " + config.Redacted + ".",
		Example: "  hazmon config show --config /etc/hazmon/hazmon.yaml\n  hazmon config show -c configs/demo.yaml | less",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := config.Load(path)
			if err != nil {
				return err
			}
			c := l.Config.Effective().Redacted()
			data, err := yaml.Marshal(&c)
			if err != nil {
				return fmt.Errorf("encode config: %w", err)
			}
			fmt.Fprintf(stdout, "# effective config of %s (defaults applied, secrets redacted)\n", path)
			_, err = stdout.Write(data)
			return err
		},
	}
	show.Flags().StringVarP(&path, "config", "c", defaultConfig, "config file")
	return show
}

func newConfigExample(stdout io.Writer) *cobra.Command {
	var names, about strings.Builder
	for _, e := range configs.Examples {
		n := e.Name
		if n == "" {
			n = "(none)"
		} else {
			names.WriteString("|" + e.Name)
		}
		fmt.Fprintf(&about, "\n  %-14s %s", n, e.About)
	}
	return &cobra.Command{
		Use:   "example [" + strings.TrimPrefix(names.String(), "|") + "]",
		Short: "Print a commented example config to start from",
		Long: "Example prints a commented config (the files of configs/ in the source, built\n" +
			"into the binary). Every line marked CHANGE is a placeholder for the site;\n" +
			"edit them, then check the file with hazmon validate." + about.String(),
		Example: "  hazmon config example > /etc/hazmon/hazmon.yaml\n" +
			"  hazmon config example coal-face > hazmon.yaml\n  hazmon validate -c hazmon.yaml",
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			data, err := configs.Read(name)
			if err != nil {
				return err
			}
			_, err = stdout.Write(data)
			return err
		},
	}
}

func newConfigKeys(stdout io.Writer) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List every config key with its type, default and meaning",
		Long: "Keys lists every key the config file accepts, in file order: its path (\"[]\"\n" +
			"marks an item of a list), type, default (or \"required\") and meaning. The list\n" +
			"is made from the agent's own config types, so it is exactly what validate\n" +
			"accepts.",
		Example: "  hazmon config keys | less\n  hazmon config keys | grep -A1 '^sensors\\[\\]\\.fault_after'\n  hazmon config keys --json",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			keys := config.Keys()
			if asJSON {
				return writeJSON(stdout, keys)
			}
			var b strings.Builder
			for _, k := range keys {
				writeKey(&b, k)
			}
			_, err := io.WriteString(stdout, b.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the keys as JSON")
	return cmd
}

// writeKey writes one key in at most Width columns: path, type and
// default on its first line (the default on the next if it does not fit),
// then its meaning indented.
func writeKey(b *strings.Builder, k config.Key) {
	head := fmt.Sprintf("%-32s %s", k.Path, k.Type)
	var def string
	switch k.Default {
	case "":
	case "required":
		def = "required"
	default:
		def = "default " + k.Default
	}
	var body []string
	if def != "" && len([]rune(head))+2+len([]rune(def)) <= Width {
		head += "  " + def
	} else if def != "" {
		body = wrap(def, Width-4)
	}
	b.WriteString(strings.TrimRight(head, " ") + "\n")
	for _, l := range append(body, wrap(k.Meaning, Width-4)...) {
		b.WriteString("    " + l + "\n")
	}
}
