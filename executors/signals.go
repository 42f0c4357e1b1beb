package executors

// signalNames are the signal numbers that are the same on Linux and the
// BSDs. The others (BUS, USR1, USR2, XCPU, ...) differ between them and are
// left unnamed rather than guessed.
var signalNames = map[int]string{
	1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 5: "TRAP", 6: "ABRT", 8: "FPE",
	9: "KILL", 11: "SEGV", 13: "PIPE", 14: "ALRM", 15: "TERM",
}

// SignalName names signal n the way Result.Signal reports it ("KILL",
// "TERM", "SEGV"), or returns "" when n is not one of the signals whose
// number is portable.
func SignalName(n int) string {
	return signalNames[n]
}
