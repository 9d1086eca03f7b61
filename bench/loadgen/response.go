package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// maxEventBytes bounds one SSE line or JSON body; a tool result larger than
// this is a broken benchmark, not something to buffer without limit.
const maxEventBytes = 16 << 20

// rpcMessage is the subset of a JSON-RPC message the generator inspects.
type rpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *rpcError       `json:"error"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string {
	return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message)
}

// readResult consumes resp and returns the result of the response to request
// id. Both response shapes the spec allows are accepted: a single
// application/json body, or an SSE stream that may carry notifications (and
// SEP-1699 priming events) before the response.
func readResult(resp *http.Response, id int64) (json.RawMessage, error) {
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	mediaType, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("parse Content-Type %q: %w", resp.Header.Get("Content-Type"), err)
	}
	var msg *rpcMessage
	switch mediaType {
	case "application/json":
		msg, err = decodeJSONResponse(resp.Body)
	case "text/event-stream":
		msg, err = findSSEResponse(resp.Body, id)
	default:
		return nil, fmt.Errorf("unexpected Content-Type %q", mediaType)
	}
	if err != nil {
		return nil, err
	}
	return checkResponse(msg, id)
}

func decodeJSONResponse(r io.Reader) (*rpcMessage, error) {
	var msg rpcMessage
	if err := json.NewDecoder(io.LimitReader(r, maxEventBytes)).Decode(&msg); err != nil {
		return nil, fmt.Errorf("decode JSON response: %w", err)
	}
	return &msg, nil
}

// findSSEResponse reads events until it finds the response to id. Other
// messages on the stream (progress, log notifications) are skipped, as the
// spec allows the server to send them first.
func findSSEResponse(r io.Reader, id int64) (*rpcMessage, error) {
	var found *rpcMessage
	err := scanSSE(r, func(event string, data []byte) (bool, error) {
		// Priming events (SEP-1699) carry only an id for resumption; the SSE
		// default event type is "message".
		if len(data) == 0 || (event != "" && event != "message") {
			return true, nil
		}
		var msg rpcMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			return false, fmt.Errorf("decode SSE data: %w", err)
		}
		if msg.Method != "" || !idEquals(msg.ID, id) {
			return true, nil
		}
		found = &msg
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("SSE stream ended without a response to request %d", id)
	}
	return found, nil
}

// scanSSE parses an event stream (WHATWG "server-sent events" rules for
// data/event fields and comments) and calls fn for each dispatched event
// until fn returns false or the stream ends.
func scanSSE(r io.Reader, fn func(event string, data []byte) (bool, error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventBytes)
	var (
		event   string
		data    []byte
		hasData bool
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			more, err := fn(event, data)
			if err != nil || !more {
				return err
			}
			event, data, hasData = "", data[:0], false
			continue
		}
		if line[0] == ':' {
			continue // comment, used as keep-alive
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "event":
			event = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read SSE stream: %w", err)
	}
	return nil // an unterminated final event is discarded, per the SSE rules
}

// checkResponse verifies that msg is a successful response to request id.
func checkResponse(msg *rpcMessage, id int64) (json.RawMessage, error) {
	if !idEquals(msg.ID, id) {
		return nil, fmt.Errorf("response id %s does not match request id %d", msg.ID, id)
	}
	if msg.Error != nil {
		return nil, msg.Error
	}
	if len(msg.Result) == 0 || string(msg.Result) == "null" {
		return nil, errors.New("response has neither result nor error")
	}
	return msg.Result, nil
}

// idEquals compares a raw JSON id with the numeric id the generator sent.
func idEquals(raw json.RawMessage, id int64) bool {
	return string(bytes.TrimSpace(raw)) == strconv.FormatInt(id, 10)
}

// checkToolResult rejects tool-level failures, which arrive as successful
// JSON-RPC responses with isError set, and results that are not final.
func checkToolResult(result json.RawMessage) error {
	var r struct {
		IsError    bool   `json:"isError"`
		ResultType string `json:"resultType"`
		Content    []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(result, &r); err != nil {
		return fmt.Errorf("decode tools/call result: %w", err)
	}
	if r.IsError {
		var texts []string
		for _, c := range r.Content {
			texts = append(texts, c.Text)
		}
		return fmt.Errorf("tool returned isError: %s", strings.Join(texts, "; "))
	}
	if r.ResultType != "" && r.ResultType != "complete" {
		return fmt.Errorf("tool result has resultType %q, want complete", r.ResultType)
	}
	return nil
}
