package app

import (
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
)

// configHash is the contract.ConfigHash of the config file the agent runs
// (its bytes as read), or of the config itself re-encoded when it did not
// come from a file.
func configHash(path string, cfg *config.Config) string {
	if path != "" {
		if b, err := os.ReadFile(path); err == nil {
			return contract.ConfigHash(b)
		}
	}
	b, _ := yaml.Marshal(cfg)
	return contract.ConfigHash(b)
}

// degradedReasons says why the agent is not fully online, for the retained
// status (empty: online).
func (a *App) degradedReasons() []string {
	var rs []string
	a.ctl.mu.Lock()
	if a.ctl.bufferFault != "" {
		rs = append(rs, "buffer: "+a.ctl.bufferFault)
	}
	a.ctl.mu.Unlock()
	if st := a.buffer(); st != nil {
		if ok, why := st.Health(); !ok {
			rs = append(rs, "buffer: "+why)
		}
	}
	return rs
}

// updateState publishes the agent's state in the retained status:
// degraded with its reasons, or online.
func (a *App) updateState() {
	pub := a.publisher()
	if pub == nil {
		return
	}
	state := contract.StateOnline
	rs := a.degradedReasons()
	if len(rs) > 0 {
		state = contract.StateDegraded
	}
	if err := pub.SetState(state, rs); err != nil {
		a.log.Error("status state", "err", err)
	}
}
