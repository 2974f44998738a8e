package store

// benchItem is one telemetry record as the agent buffers it.
var benchItem = []byte(`{"sensor":"CH4-101","type":"methane","ts":1700000000000,"value":0.52,"unit":"%CH4","status":"normal"}`)
