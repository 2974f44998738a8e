// Package packaging holds no code: its tests check what goes onto a board,
// by running it. scripts/install.sh is run into a throwaway DESTDIR tree
// and, where the machine allows a private mount namespace, for real over
// overlay copies of /etc, /usr and /var; scripts/hazmon.service is checked
// with scripts/verify-unit.sh (systemd-analyze verify); every configs/*.yaml
// is loaded with internal/config and its rules are built with
// internal/rules.
package packaging
