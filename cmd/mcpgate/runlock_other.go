//go:build !unix

package main

// lockAuditLog does nothing where flock is not available.
func lockAuditLog(string) (unlock func(), err error) { return func() {}, nil }
