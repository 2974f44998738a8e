package cli

import (
	"io"
	"os"
	"strconv"

	"golang.org/x/term"
)

// Default terminal size when neither the terminal nor $COLUMNS/$LINES
// tell: an 80×24 SSH terminal.
const (
	defaultCols = 80
	defaultRows = 24
)

// isTerminal reports whether w is a terminal (progress lines and in-place
// redraws only make sense there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// termSize returns w's size in columns and rows: the terminal's own, else
// $COLUMNS and $LINES, else 80×24.
func termSize(w io.Writer) (cols, rows int) {
	cols, rows = defaultCols, defaultRows
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if c, r, err := term.GetSize(int(f.Fd())); err == nil && c > 0 && r > 0 {
			return c, r
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		cols = n
	}
	if n, err := strconv.Atoi(os.Getenv("LINES")); err == nil && n > 0 {
		rows = n
	}
	return cols, rows
}
