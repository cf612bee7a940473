import { describe, expect, it } from 'vitest';
import { IdentityGraph } from '../../src/engine/identity-graph.ts';

const sorted = (keys: string[]) => [...keys].sort();

describe('identity graph', () => {
  it('interns users: one entry per key', () => {
    const graph = new IdentityGraph();
    expect(graph.user('db_id:1')).toBe(graph.user('db_id:1'));
    expect(graph.user('db_id:1').ref).toEqual({ kind: 'db_id', id: '1' });
  });

  it("keeps each user's identifiers exact across relinks", () => {
    const graph = new IdentityGraph();
    const [u1, u2] = [graph.user('db_id:1'), graph.user('db_id:2')];
    graph.link('cookie:a', u1, 1);
    graph.link('cookie:b', u1, 2);
    graph.link('device_id:d', u1, 3);
    graph.link('cookie:b', u2, 4); // moved away
    expect(sorted(graph.identifiersOf(u1))).toEqual(['cookie:a', 'device_id:d']);
    expect(graph.identifiersOf(u2)).toEqual(['cookie:b']);
    graph.link('cookie:a', u2, 5);
    graph.link('device_id:d', u2, 6);
    expect(graph.identifiersOf(u1)).toEqual([]);
    expect(sorted(graph.identifiersOf(u2))).toEqual(['cookie:a', 'cookie:b', 'device_id:d']);
    graph.link('cookie:a', u2, 7); // linked again to the same user: counted once
    expect(graph.identifiersOf(u2)).toHaveLength(3);
    expect(graph.userOf('cookie:a')).toBe(u2);
    expect(graph.linkOf('cookie:a')?.seq).toBe(7);
  });

  it('stays exact for a user with very many identifiers', () => {
    const graph = new IdentityGraph();
    const [big, other] = [graph.user('db_id:big'), graph.user('db_id:other')];
    const keys = Array.from({ length: 200 }, (_, i) => `cookie:c${i}`);
    keys.forEach((key, i) => graph.link(key, big, i + 1));
    for (const key of keys.filter((_, i) => i % 3 === 0)) graph.link(key, other, 1000);
    expect(sorted(graph.identifiersOf(big))).toEqual(sorted(keys.filter((_, i) => i % 3 !== 0)));
    expect(sorted(graph.identifiersOf(other))).toEqual(sorted(keys.filter((_, i) => i % 3 === 0)));
    expect(graph.size).toBe(200);
  });

  it('a checkpoint takes the links changed since the previous one; restored links are not changes', () => {
    const graph = new IdentityGraph();
    graph.restore('cookie:old', 'db_id:1', 1);
    graph.link('cookie:new', graph.user('db_id:1'), 2);
    expect([...graph.takeChanges()].map(([key, link]) => [key, link.user.key, link.seq])).toEqual([['cookie:new', 'db_id:1', 2]]);
    expect(graph.takeChanges().size).toBe(0);
    expect(sorted(graph.identifiersOf(graph.user('db_id:1')))).toEqual(['cookie:new', 'cookie:old']);
  });
});
