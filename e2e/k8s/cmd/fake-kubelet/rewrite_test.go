package main

import "testing"

func TestMountRewriterReplacesOncePerMount(t *testing.T) {
	r := mountRewriter(map[string]string{
		"/var/lib/fjord":        "/tmp/hostpath_pv/pv-1",
		"/tmp":                  "/work/pods/volumes/uid/tmp",
		"/etc/fjord":            "/work/pods/volumes/uid/etc",
		"/etc/fjord/tls/broker": "/work/pods/volumes/uid/broker",
	})
	for in, want := range map[string]string{
		"--data-dir=/var/lib/fjord/data":                  "--data-dir=/tmp/hostpath_pv/pv-1/data",
		"--scratch=/tmp/x":                                "--scratch=/work/pods/volumes/uid/tmp/x",
		"--ssl-keystore-location=/etc/fjord/tls/broker/a": "--ssl-keystore-location=/work/pods/volumes/uid/broker/a",
		"--config=/etc/fjord/other":                       "--config=/work/pods/volumes/uid/etc/other",
	} {
		if got := r.Replace(in); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}
