package phone

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestZones(t *testing.T) {
	for number, want := range map[string][]string{
		"+81355550199":  {"Asia/Tokyo"},
		"+14155550100":  {"America/Los_Angeles"},
		"+12125550123":  {"America/New_York"},
		"+442079460123": {"Europe/London"},
		"+74951234567":  {"Europe/Moscow"},
		"+61255501234":  {"Australia/Sydney"},
		// An Alaskan area code spans two zones.
		"+19075550100": {"America/Adak", "America/Anchorage"},
	} {
		got, err := Zones(number)
		require.NoError(t, err, number)
		require.Equal(t, want, got, number)
	}

	// Mobiles of countries spanning zones are not pinned down by prefix.
	ru, err := Zones("+79161234567")
	require.NoError(t, err)
	require.Equal(t, []string{"Europe/Moscow"}, ru, "a Moscow mobile prefix")
	us, err := Zones("+18005550100") // toll-free: anywhere in North America
	require.NoError(t, err)
	require.Contains(t, us, "Pacific/Honolulu")
	require.Contains(t, us, "America/St_Johns")

	// Unknown region: an unassigned US range, a non-geographic service.
	for _, number := range []string{"+15551234567", "+88212345678"} {
		_, err := Zones(number)
		require.ErrorIs(t, err, ErrNoZone, number)
	}
	_, err = Zones("4155550100")
	require.ErrorIs(t, err, ErrNotE164)
}

func TestCheckZone(t *testing.T) {
	require.NoError(t, CheckZone("+14155550100", "America/New_York"), "any zone of the country, not only the number's own")
	require.NoError(t, CheckZone("+79161234567", "Asia/Vladivostok"))
	require.NoError(t, CheckZone("+81355550199", "Asia/Tokyo"))

	err := CheckZone("+81355550199", "America/New_York")
	require.ErrorIs(t, err, ErrZoneNotInCountry)
	require.ErrorContains(t, err, "(JP)")
	require.ErrorContains(t, err, "Asia/Tokyo", "the error lists the zones that would do")
	require.NotContains(t, err.Error(), "5550199", "the number is not quoted")

	require.ErrorIs(t, CheckZone("+14155550100", "UTC"), ErrZoneNotInCountry)
	require.ErrorIs(t, CheckZone("+14155550100", "US/Pacific"), ErrZoneNotInCountry, "aliases are not zone.tab names")
	require.ErrorIs(t, CheckZone("+15551234567", "America/New_York"), ErrNoZone, "no country, no zone of it")

	us, err := CountryZones("+12125550123")
	require.NoError(t, err)
	require.Contains(t, us, "Pacific/Honolulu")
	require.NotContains(t, us, "America/Toronto", "Canada's zones are not the US's")
}
