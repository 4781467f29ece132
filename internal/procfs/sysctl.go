package procfs

// ParseSwitch returns the value of a sysctl that is 0 or 1 (/proc/sys/kernel/task_delayacct):
// one digit and the kernel's newline.
func ParseSwitch(b []byte) (bool, error) {
	f := fields{b: b}
	tok := f.next()
	if len(tok) != 1 || (tok[0] != '0' && tok[0] != '1') || len(f.next()) != 0 {
		return false, ErrMalformed
	}
	return tok[0] == '1', nil
}
