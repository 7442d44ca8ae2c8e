package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// svgElements decodes the SVG to its end and counts the elements by name,
// and the rect elements of class "bar".
func svgElements(t *testing.T, b []byte) (elems map[string]int, bars int) {
	t.Helper()
	elems = map[string]int{}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if se, ok := tok.(xml.StartElement); ok {
			elems[se.Name.Local]++
			for _, a := range se.Attr {
				if se.Name.Local == "rect" && a.Name.Local == "class" && a.Value == "bar" {
					bars++
				}
			}
		}
	}
	return elems, bars
}

func TestSVGBarPerJobAndRatio(t *testing.T) {
	r := testReport()
	r.Targets[1].Skipped = "" // both vosfs targets have results
	r.Targets = append(r.Targets, targetInfo{Name: "loopback-nopass", Description: "loopback, no passthrough"})
	for i := range r.Runs {
		switch r.Runs[i].Target {
		case "vosfs-sync":
			async := r.Runs[i]
			async.Target = "vosfs-async"
			r.Runs = append(r.Runs, async)
		case "loopback":
			nopass := r.Runs[i]
			nopass.Target = "loopback-nopass"
			r.Runs = append(r.Runs, nopass)
		}
	}
	r.Summary = summarize(r.Jobs, allTargets, r.Runs)
	var b bytes.Buffer
	require.NoError(t, r.writeSVG(&b))
	elems, bars := svgElements(t, b.Bytes())
	assert.Equal(t, 1, elems["svg"])
	// randread on loopback failed in round 2, so both loopbacks have a
	// median for every job.
	assert.Equal(t, len(allJobs)*4, bars, "a bar per job and ratio to either loopback")
	assert.Contains(t, b.String(), "vosfs-sync / loopback<")
	assert.Contains(t, b.String(), "vosfs-async / loopback<")
	assert.Contains(t, b.String(), "vosfs-sync / loopback-nopass<")
	assert.Contains(t, b.String(), "vosfs-async / loopback-nopass<")
	for _, j := range allJobs {
		assert.Contains(t, b.String(), ">"+j.Name+"</text>")
	}
}

func TestSVGMissingValues(t *testing.T) {
	// vosfs-async failed to mount: its bars are missing, and say so.
	r := testReport()
	var b bytes.Buffer
	require.NoError(t, r.writeSVG(&b))
	_, bars := svgElements(t, b.Bytes())
	assert.Equal(t, len(allJobs), bars)
	assert.Equal(t, len(allJobs), bytes.Count(b.Bytes(), []byte(">n/a<")))
}

func TestSVGNoSeries(t *testing.T) {
	r := testReport()
	r.Targets = r.Targets[2:]
	r.Jobs = append(r.Jobs, `a<b&"c"`)
	var b bytes.Buffer
	require.NoError(t, r.writeSVG(&b))
	_, bars := svgElements(t, b.Bytes())
	assert.Zero(t, bars)
	assert.Contains(t, b.String(), "no ratios to draw")
}

func TestNiceStep(t *testing.T) {
	for raw, want := range map[float64]float64{0.22: 0.25, 0.3: 0.5, 0.1: 0.1, 1.3: 2, 7: 10, 0: 0.1} {
		assert.InDelta(t, want, niceStep(raw), 1e-12, "niceStep(%v)", raw)
	}
}
