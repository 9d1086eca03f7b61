package sealed

import (
	"errors"
	"testing"
	"time"
)

func TestSealer(t *testing.T) {
	s := New("test", time.Now)
	state, err := s.Seal("op", 2, map[string]string{"k": "v"})
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	got, err := s.Open("op", state)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if got.Step != 2 || got.Data["k"] != "v" {
		t.Errorf("opened payload = %+v", got)
	}
	if _, err := New("test", time.Now).Open("op", state); !errors.Is(err, ErrForged) {
		t.Errorf("open under another key: err = %v, want %v", err, ErrForged)
	}
	for _, bad := range []string{"", "no-separator", "!!!.!!!"} {
		if _, err := s.Open("op", bad); err == nil {
			t.Errorf("open(%q) succeeded", bad)
		}
	}
}
