package udf

// Observer hears what the handlers of a Server do, for metrics. Its methods
// are called on the connections' goroutines, concurrently: they must be
// safe for that, and quick (PointReceived is on the hot path).
type Observer interface {
	// PointReceived is called for each point a task sends.
	PointReceived()
	// AlertEvent is called for each alert event handed to the Sink, with its level.
	AlertEvent(level Level)
	// InitFailed is called when a task's Init is refused (a bad option, an
	// unknown endpoint): the task fails to start.
	InitFailed()
}
