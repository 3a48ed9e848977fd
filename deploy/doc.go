// Package deploy holds edgehub's deployment files, not code: the
// docker-compose file, the Kubernetes manifests, the haproxy and nginx
// configs and the Grafana dashboard (README.md says which is which). Its
// test checks that they parse and agree with the binaries they run: flag
// names, ports, probes, and drain timeouts shorter than every grace period.
package deploy
