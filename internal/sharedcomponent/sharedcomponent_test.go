package sharedcomponent

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOneValuePerKeyStartedOnceStoppedLast(t *testing.T) {
	var m Map[string, *int]
	made, starts, stops := 0, 0, 0
	create := func() (*int, error) { made++; v := made; return &v, nil }
	a, err := m.Get("cfg", create)
	require.NoError(t, err)
	b, err := m.Get("cfg", create)
	require.NoError(t, err)
	other, err := m.Get("other", create)
	require.NoError(t, err)
	assert.Same(t, a.Value(), b.Value(), "one value per key")
	assert.NotSame(t, a.Value(), other.Value())
	assert.Equal(t, 2, made)

	start := func() error { starts++; return errors.New("refused") }
	assert.EqualError(t, a.Start(start), "refused")
	assert.EqualError(t, b.Start(start), "refused", "the first start's result")
	assert.Equal(t, 1, starts)

	stop := func() error { stops++; return nil }
	require.NoError(t, a.Shutdown(stop))
	require.NoError(t, a.Shutdown(stop), "a hold is released once")
	assert.Equal(t, 0, stops, "b still holds it")
	require.NoError(t, b.Shutdown(stop))
	assert.Equal(t, 1, stops)
	_, _, ok := m.Peek("cfg")
	assert.False(t, ok, "the key is forgotten")
	_, holds, ok := m.Peek("other")
	assert.True(t, ok)
	assert.Equal(t, 1, holds)

	c, err := m.Get("cfg", create)
	require.NoError(t, err)
	assert.Equal(t, 3, *c.Value(), "a key created again gets a new value")
}

func TestCreateFailureHoldsNothing(t *testing.T) {
	var m Map[int, string]
	_, err := m.Get(1, func() (string, error) { return "", errors.New("bad config") })
	assert.EqualError(t, err, "bad config")
	_, _, ok := m.Peek(1)
	assert.False(t, ok)
}
