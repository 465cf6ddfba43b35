// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Copyright (c) 2026 The lanyard authors

// ly-go-tls: an HTTPS client on Go's crypto/tls (standard library only), the TLS
// stack that uprobes on OpenSSL and GnuTLS cannot see: lanyard must list it as
// unobservable rather than miss it silently.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	var headers headerList
	url := flag.String("url", "", "https://host:port/path")
	sni := flag.String("sni", "", "server name (default: the URL's host)")
	cafile := flag.String("cafile", "", "CA certificate (PEM); empty: do not verify")
	count := flag.Int("count", 1, "requests, one connection each")
	interval := flag.Duration("interval", 0, "pause between requests")
	waitFile := flag.String("wait-file", "", "print \"ready <pid>\", wait until the file exists")
	flag.Var(&headers, "header", "'Name: value' (repeatable)")
	flag.Parse()
	if *url == "" {
		flag.Usage()
		os.Exit(2)
	}

	cfg := &tls.Config{ServerName: *sni, InsecureSkipVerify: *cafile == ""}
	if *cafile != "" {
		pem, err := os.ReadFile(*cafile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ly-go-tls:", err)
			os.Exit(1)
		}
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(pem)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg,
		DisableKeepAlives: true}, Timeout: 10 * time.Second}

	if *waitFile != "" {
		fmt.Printf("ready %d\n", os.Getpid())
		for {
			if _, err := os.Stat(*waitFile); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	failed := 0
	for i := 0; i < *count; i++ {
		if i > 0 {
			time.Sleep(*interval)
		}
		req, _ := http.NewRequest("GET", *url, nil)
		for _, h := range headers {
			kv := strings.SplitN(h, ":", 2)
			if len(kv) == 2 {
				req.Header.Set(strings.TrimSpace(kv[0]), strings.TrimSpace(kv[1]))
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ly-go-tls:", err)
			failed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Proto, resp.Status)
		if resp.StatusCode/100 != 2 {
			failed++
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}
