package helpers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// The relay's wire: one request per line from the relay, base64 of
// "token\nop\nkey\nvalue"; one answer per line back, "ok <base64>",
// "none" or "err <base64 of the reason>".

// request is one helper call as the script made it.
type request struct {
	token, op, key string
	value          []byte
}

// maxRequest bounds one request line: the largest value (an output of
// maxOutput) base64-encoded, with room for the rest.
const maxRequest = (maxOutput+64*1024)*4/3 + 4

// parseRequest decodes one request line.
func parseRequest(line []byte) (request, error) {
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(line)))
	if err != nil {
		return request{}, fmt.Errorf("malformed request: %w", err)
	}
	parts := bytes.SplitN(raw, []byte("\n"), 4)
	if len(parts) < 3 {
		return request{}, errors.New("malformed request: too few fields")
	}
	r := request{token: string(parts[0]), op: string(parts[1]), key: string(parts[2])}
	if len(parts) == 4 {
		r.value = parts[3]
	}
	return r, nil
}

// answer is what a call gets back.
type answer struct {
	status string // ok, none or err
	body   []byte
}

func ok(body []byte) answer   { return answer{status: "ok", body: body} }
func none() answer            { return answer{status: "none"} }
func refuse(err error) answer { return answer{status: "err", body: []byte(err.Error())} }

func (a answer) line() []byte {
	return fmt.Appendf(nil, "%s %s\n", a.status, base64.StdEncoding.EncodeToString(a.body))
}

// serve reads requests until requests ends, answering each with handle.
// A request line too long to be valid is answered with an error and
// skipped, so one bad call does not end the channel.
func serve(ctx context.Context, requests io.Reader, answers io.Writer, handle func(context.Context, []byte) answer) error {
	br := bufio.NewReaderSize(requests, 64*1024)
	for {
		line, tooLong, err := readLine(br, maxRequest)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("helpers: read request: %w", err)
		}
		a := refuse(errors.New("the call is too large"))
		if !tooLong {
			a = handle(ctx, line)
		}
		if _, err := answers.Write(a.line()); err != nil {
			return fmt.Errorf("helpers: write answer: %w", err)
		}
	}
}

// readLine reads one line; past max bytes it discards the rest of it and
// says so.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			tooLong, line = true, nil
		} else if !tooLong {
			line = append(line, chunk...)
		}
		switch {
		case err == nil:
			return line, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, false, err
		}
	}
}
