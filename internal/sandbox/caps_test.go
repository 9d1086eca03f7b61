package sandbox

import (
	"errors"
	"strings"
	"testing"
)

// TestChoose: the strongest level the host offers, never below what the
// operator accepted, and an error naming what each level lacks.
func TestChoose(t *testing.T) {
	noUserNS := errors.New("no space left on device")
	all := Capabilities{Landlock: 7, Root: true, Cgroups: "v1"}
	tests := []struct {
		name    string
		caps    Capabilities
		accept  Isolation
		want    Isolation
		wantErr []string
	}{
		{"everything, full accepted", all, "", IsolationFull, nil},
		{"everything, weaker accepted", all, IsolationLandlockOnly, IsolationFull, nil},
		{"no user namespaces, full only", Capabilities{UserNamespaces: noUserNS, Landlock: 7, Root: true}, IsolationFull, "",
			[]string{"full isolation unavailable", "full: user namespaces: no space left on device"}},
		{"no user namespaces, root, no-userns accepted", Capabilities{UserNamespaces: noUserNS, Landlock: 7, Root: true}, IsolationNoUserNS, IsolationNoUserNS, nil},
		{"no user namespaces, unprivileged, landlock-only accepted",
			Capabilities{UserNamespaces: noUserNS, RootNamespaces: errors.New("needs a root gateway"), Landlock: 7}, IsolationLandlockOnly, IsolationLandlockOnly, nil},
		{"no user namespaces, unprivileged, no-userns accepted",
			Capabilities{UserNamespaces: noUserNS, RootNamespaces: errors.New("needs a root gateway"), Landlock: 7}, IsolationNoUserNS, "",
			[]string{"full: user namespaces", "no-userns: namespaces without a user namespace: needs a root gateway"}},
		{"landlock without network rules", Capabilities{UserNamespaces: noUserNS, RootNamespaces: noUserNS, Landlock: 3}, IsolationLandlockOnly, "",
			[]string{"landlock-only: landlock ABI 3 has no network rules (4 needed)"}},
		{"no landlock: only none", Capabilities{LandlockErr: errors.New("landlock: disabled at boot")}, IsolationNone, IsolationNone, nil},
		{"no seccomp", Capabilities{Landlock: 7, Seccomp: errors.New("not built")}, IsolationLandlockOnly, "",
			[]string{"full: seccomp: not built", "landlock-only: seccomp: not built"}},
		{"unknown level", all, "chroot", "", []string{`unknown level "chroot"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.caps.Choose(tt.accept)
			if got != tt.want {
				t.Errorf("Choose(%q) = %q, %v; want %q", tt.accept, got, err, tt.want)
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Choose(%q) error %v, want it to say %q", tt.accept, err, w)
				}
			}
			if len(tt.wantErr) == 0 && err != nil {
				t.Errorf("Choose(%q): %v", tt.accept, err)
			}
		})
	}
}
