package monitor

// SetUnderPressureForTest lets external tests (package health_test, which
// may import packages that import this one) switch backpressure.
func (p *Pressure) SetUnderPressureForTest(on bool, rssMB float64) {
	p.update(on, newReading(MetricRSS, "", rssMB, UnitMB, DefaultThresholds().RSSMB))
}
