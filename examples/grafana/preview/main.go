// Command preview renders the Grafana dashboard without Grafana: it serves a page that reads
// examples/grafana/propeller-tasks.json, runs every panel's PromQL against a Prometheus
// server (proxied, so the page needs no CORS), and draws each panel's series (a table panel:
// its rows now, from an instant query). It checks that the dashboard's queries return data
// for the Prometheus exporter's output.
//
//	go run ./examples/grafana/preview --prometheus http://127.0.0.1:9090 --listen 127.0.0.1:8099
package main

import (
	_ "embed"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

//go:embed index.html
var page []byte

func main() {
	prom := flag.String("prometheus", "http://127.0.0.1:9090", "Prometheus server")
	listen := flag.String("listen", "127.0.0.1:8099", "address to serve the preview on")
	dashboard := flag.String("dashboard", "examples/grafana/propeller-tasks.json", "dashboard JSON")
	flag.Parse()
	target, err := url.Parse(*prom)
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/api/", httputil.NewSingleHostReverseProxy(target))
	http.HandleFunc("/dashboard.json", func(w http.ResponseWriter, _ *http.Request) {
		b, err := os.ReadFile(*dashboard)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	log.Printf("preview on http://%s (Prometheus %s)", *listen, *prom)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
