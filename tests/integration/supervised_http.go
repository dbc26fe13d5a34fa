// An HTTP server and client in Go, which makes its system calls itself (no libc, so no
// preload): the supervisor's tests build it with `go build` and run it under `meshtls supervise`
// (test_supervisor_go.py).
//
//	supervised_http server ADDRESS TOKEN   serve "hello TOKEN from go, path PATH" on ADDRESS
//	supervised_http client URL             GET URL, print the status and the answer
//	supervised_http clients URL N          GET URL on N connections at once (from as many
//	                                       goroutines, so from several threads), print how many
//	                                       answered 200 with the same body
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func serve(address, token string) error {
	listener, err := net.Listen("tcp", address)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from go, path %s", token, r.URL.Path)
		fmt.Printf("served %s from %s\n", r.URL.Path, r.RemoteAddr)
	})
	return http.Serve(listener, handler)
}

func fetch(url string) error {
	client := &http.Client{Timeout: 20 * time.Second}
	response, err := client.Get(url)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	answer, err := io.ReadAll(response.Body)
	if err != nil {
		return err
	}
	fmt.Printf("status %d\nanswer: %s\n", response.StatusCode, answer)
	return nil
}

func fetchConcurrently(url string, count int) error {
	transport := &http.Transport{DisableKeepAlives: true}
	client := &http.Client{Timeout: 30 * time.Second, Transport: transport}
	var wait sync.WaitGroup
	answers := make(chan string, count)
	for i := 0; i < count; i++ {
		wait.Add(1)
		go func() {
			defer wait.Done()
			response, err := client.Get(url)
			if err != nil {
				answers <- "error: " + err.Error()
				return
			}
			defer response.Body.Close()
			body, _ := io.ReadAll(response.Body)
			answers <- fmt.Sprintf("%d %s", response.StatusCode, body)
		}()
	}
	wait.Wait()
	close(answers)
	same, first := 0, ""
	for answer := range answers {
		if first == "" {
			first = answer
		}
		if answer == first && strings.HasPrefix(answer, "200 ") {
			same++
		} else {
			fmt.Printf("different: %s\n", answer)
		}
	}
	fmt.Printf("concurrent: %d of %d answered %s\n", same, count, first)
	return nil
}

func main() {
	var err error
	switch {
	case len(os.Args) == 4 && os.Args[1] == "server":
		err = serve(os.Args[2], os.Args[3])
	case len(os.Args) == 3 && os.Args[1] == "client":
		err = fetch(os.Args[2])
	case len(os.Args) == 4 && os.Args[1] == "clients":
		count, _ := strconv.Atoi(os.Args[3])
		err = fetchConcurrently(os.Args[2], count)
	default:
		fmt.Fprintln(os.Stderr, "usage: supervised_http server ADDRESS TOKEN | client URL | clients URL N")
		os.Exit(2)
	}
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
}
