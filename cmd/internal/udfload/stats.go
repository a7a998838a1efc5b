package main

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// rates are the throughputs of a UDF over rounds of the same run.
type rates []float64

// median is the middle rate (the mean of the two middle ones for an even
// count): one lucky or unlucky round on a busy machine does not move it.
func (r rates) median() float64 {
	if len(r) == 0 {
		return 0
	}
	s := append(rates(nil), r...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r rates) String() string {
	s := make([]string, len(r))
	for i, v := range r {
		s[i] = strconv.FormatFloat(v/1000, 'f', 0, 64) + "k"
	}
	return strings.Join(s, " ")
}

// ratio is the median of the ratios of r to base round by round (r[i] /
// base[i]): each round of one side ran right next to the same round of
// the other, so that the machine's slower and faster spells, which move
// both, cancel out in each ratio.
func (r rates) ratio(base rates) float64 {
	var q rates
	for i := range min(len(r), len(base)) {
		if base[i] > 0 {
			q = append(q, r[i]/base[i])
		}
	}
	return q.median()
}

// compare runs a and b alternately, rounds times each, and returns their
// rates: alternating spreads the machine's other load over both; compare
// them with ratio.
func compare(rounds int, a, b func() (float64, error)) (ra, rb rates, err error) {
	for range rounds {
		va, err := a()
		if err != nil {
			return nil, nil, err
		}
		vb, err := b()
		if err != nil {
			return nil, nil, err
		}
		ra, rb = append(ra, va), append(rb, vb)
	}
	return ra, rb, nil
}

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	k := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(k, 0), len(s)-1)]
}
