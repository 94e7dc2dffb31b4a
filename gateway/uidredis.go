package gateway

import (
	"context"
	"errors"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisUIDStore is a UIDStore in Redis, for a fleet of proxies sharing one: a hash per folder,
// PREFIX+"uids:"+hash(mailbox)+":"+hash(folder), whose fields are "#v" (UIDVALIDITY), "#n" (the
// next UID) and "i"+id (a message's UID), and PREFIX+"uidv:"+hash(mailbox), the last UIDVALIDITY
// given in the mailbox. Each Assign is one Lua script, so it is atomic across processes.
type RedisUIDStore struct {
	c      goredis.UniversalClient
	prefix string
}

// NewRedisUIDStore returns a store on c whose keys start with prefix (the token store's).
func NewRedisUIDStore(c goredis.UniversalClient, prefix string) *RedisUIDStore {
	return &RedisUIDStore{c: c, prefix: prefix}
}

// assignScript: KEYS[1] the folder's hash, KEYS[2] the mailbox's last validity; ARGV[1] now in
// seconds, then the ids. It returns the validity and the UIDs.
var assignScript = goredis.NewScript(`
local v = redis.call('HGET', KEYS[1], '#v')
if not v then
  v = tonumber(ARGV[1])
  local last = tonumber(redis.call('GET', KEYS[2]) or '0')
  if v <= last then v = last + 1 end
  redis.call('SET', KEYS[2], v)
  redis.call('HSET', KEYS[1], '#v', v, '#n', 1)
end
local out = {}
for i = 2, #ARGV do
  local f = 'i' .. ARGV[i]
  local u = redis.call('HGET', KEYS[1], f)
  if not u then
    u = redis.call('HINCRBY', KEYS[1], '#n', 1) - 1
    redis.call('HSET', KEYS[1], f, u)
  end
  out[#out + 1] = tonumber(u)
end
return {tonumber(v), out}
`)

// redisBatch bounds the ids of one script call (its arguments are held in Redis's memory at once).
const redisBatch = 1000

func (s *RedisUIDStore) keys(mailbox, folder string) []string {
	mb := nameHash(mailbox)
	return []string{s.prefix + "uids:" + mb + ":" + nameHash(folder), s.prefix + "uidv:" + mb}
}

// Assign implements UIDStore.
func (s *RedisUIDStore) Assign(ctx context.Context, mailbox, folder string, ids []string) (uint32, []uint32, error) {
	keys := s.keys(mailbox, folder)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	var validity uint32
	uids := make([]uint32, 0, len(ids))
	for start := 0; start == 0 || start < len(ids); start += redisBatch {
		batch := ids[start:min(start+redisBatch, len(ids))]
		args := make([]any, 0, len(batch)+1)
		args = append(args, now)
		for _, id := range batch {
			args = append(args, id)
		}
		res, err := assignScript.Run(ctx, s.c, keys, args...).Slice()
		if err != nil {
			return 0, nil, errUIDStore("Redis", err)
		}
		if len(res) != 2 {
			return 0, nil, errUIDStore("Redis", errBadUIDFile)
		}
		v, _ := res[0].(int64)
		validity = uint32(v)
		list, _ := res[1].([]any)
		for _, u := range list {
			n, _ := u.(int64)
			uids = append(uids, uint32(n))
		}
	}
	if len(uids) != len(ids) {
		return 0, nil, errUIDStore("Redis", errBadUIDFile)
	}
	return validity, uids, nil
}

func (s *RedisUIDStore) nextUID(ctx context.Context, mailbox, folder string) (uint32, error) {
	n, err := s.c.HGet(ctx, s.keys(mailbox, folder)[0], "#n").Uint64()
	switch {
	case errors.Is(err, goredis.Nil):
		return 1, nil
	case err != nil:
		return 0, errUIDStore("Redis", err)
	}
	return uint32(n), nil
}

// Forget implements UIDStore.
func (s *RedisUIDStore) Forget(ctx context.Context, mailbox, folder string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	fields := make([]string, len(ids))
	for i, id := range ids {
		fields[i] = "i" + id
	}
	if err := s.c.HDel(ctx, s.keys(mailbox, folder)[0], fields...).Err(); err != nil {
		return errUIDStore("Redis", err)
	}
	return nil
}
