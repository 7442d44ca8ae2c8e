package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
)

// Chart geometry, in SVG user units (pixels).
const (
	svgLeft      = 64  // room for the y axis labels
	svgRight     = 84  // room for the label of the line at 1
	svgTop       = 92  // title and legend
	svgPlot      = 300 // height of the plot area
	svgBottom    = 96  // room for the slanted job names
	svgBarWidth  = 26
	svgGroupGap  = 34
	svgMinWidth  = 580
	svgTickCount = 5
)

// seriesColors are the fills of the series, in order.
var seriesColors = []string{"#3b6fb6", "#e08a2c", "#5a9e4b", "#b5485d"}

// chartSeries are the ratios the chart draws: each vosfs target over each
// loopback (with and without passthrough) in the report.
func (r *report) chartSeries() []ratio {
	var qs []ratio
	for _, q := range r.ratios() {
		if q.den == targetLoopback || q.den == targetLoopbackFd {
			qs = append(qs, q)
		}
	}
	return qs
}

// writeSVG writes results.svg: a grouped bar chart of the ratios to
// loopback, a group per job and a bar per ratio, with a dashed line at 1.
func (r *report) writeSVG(w io.Writer) error {
	var b bytes.Buffer
	series := r.chartSeries()
	groupWidth := float64(len(series)*svgBarWidth + svgGroupGap)
	plotWidth := groupWidth * float64(max(len(r.Jobs), 1))
	legendWidth := 0.0
	for _, q := range series {
		legendWidth += legendItemWidth(q)
	}
	width := max(svgLeft+plotWidth+svgRight, svgMinWidth, svgLeft+legendWidth)
	height := float64(svgTop + svgPlot + svgBottom)
	baseY := float64(svgTop + svgPlot)

	// The scale: from 0 to a round number above the largest ratio and 1.
	top := 1.0
	for _, j := range r.Jobs {
		for _, q := range series {
			if v, ok := r.ratio(j, q); ok {
				top = math.Max(top, v)
			}
		}
	}
	step := niceStep(top * 1.1 / svgTickCount)
	top = math.Ceil(top*1.1/step) * step
	y := func(v float64) float64 { return baseY - v/top*svgPlot }

	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">vosfs relative to go-fuse's loopback</text>`+"\n", svgLeft)
	fmt.Fprintf(&b, `<text x="%d" y="42" font-size="11" fill="#555">%s</text>`+"\n", svgLeft,
		esc("median bandwidth or IOPS of each job over loopback's, with passthrough and without; above 1, vosfs is faster"))

	// Legend.
	lx := float64(svgLeft)
	for i, q := range series {
		fmt.Fprintf(&b, `<rect x="%.1f" y="54" width="14" height="14" fill="%s"/>`+"\n", lx, seriesColors[i%len(seriesColors)])
		fmt.Fprintf(&b, `<text x="%.1f" y="66">%s</text>`+"\n", lx+20, esc(q.num+" / "+q.den))
		lx += legendItemWidth(q)
	}
	if len(series) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#666">%s</text>`+"\n", svgLeft, baseY-svgPlot/2,
			esc("no ratios to draw: the run had no vosfs target or no loopback target"))
	}

	// Grid and y axis.
	for v := 0.0; v <= top+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", svgLeft, y(v), svgLeft+plotWidth, y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#444">%s</text>`+"\n", svgLeft-8, y(v)+4, trimFloat(v))
	}
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle" fill="#444">ratio to the loopback</text>`+"\n", baseY-svgPlot/2)

	// The line at 1, where vosfs matches loopback, behind the bars.
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n", svgLeft, y(1), svgLeft+plotWidth, y(1))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="#c0392b">loopback = 1</text>`+"\n", svgLeft+plotWidth+6, y(1)+4)

	// Bars, a group per job.
	for gi, jobName := range r.Jobs {
		gx := svgLeft + float64(gi)*groupWidth + svgGroupGap/2
		for si, q := range series {
			x := gx + float64(si*svgBarWidth)
			v, ok := r.ratio(jobName, q)
			if !ok {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#888">n/a</text>`+"\n", x+svgBarWidth/2, baseY-4)
				continue
			}
			fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n",
				x, y(v), svgBarWidth-2, baseY-y(v), seriesColors[si%len(seriesColors)],
				esc(fmt.Sprintf("%s, %s: %.2f", jobName, q, v)))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" stroke="white" stroke-width="3" paint-order="stroke">%.2f</text>`+"\n", x+(svgBarWidth-2)/2.0, y(v)-3, v)
		}
		lxj := gx + float64(len(series)*svgBarWidth)/2
		fmt.Fprintf(&b, `<text transform="translate(%.1f %.1f) rotate(-35)" text-anchor="end">%s</text>`+"\n", lxj, baseY+16, esc(jobName))
	}

	// The axes.
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", svgLeft, baseY, svgLeft+plotWidth, baseY)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", svgLeft, svgTop, svgLeft, baseY)
	fmt.Fprintf(&b, "</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// niceStep rounds a raw tick step up to 1, 2, 2.5 or 5 times a power of 10.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 0.1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// trimFloat writes a tick value without needless digits.
func trimFloat(v float64) string {
	return fmt.Sprintf("%g", math.Round(v*1000)/1000)
}

// esc escapes text for XML.
func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// legendItemWidth is the room one series takes in the legend: its swatch,
// its name at about 7 px a character, and a gap.
func legendItemWidth(q ratio) float64 {
	return 20 + 7*float64(len(q.String())+2) + 28
}
