"""Success of the scripted expert and the random policy in Two Rooms (published protocol), over
200 episodes on held-out seeds (environment seed 1000), with Wilson 95% intervals: the rows any
planner's success is read against.

    .venv/bin/python benchmarks/env_baselines.py
"""
import jepa_graph as jg
from jepa_graph.envs.baselines import Expert, RandomPolicy, evaluate
for variant in ("random", "fixed"):
    for name, pol in (("expert", Expert()), ("random policy", RandomPolicy(0))):
        env = jg.envs.make("two_rooms_wall", n=200, seed=1000, variant=variant)
        r = evaluate(env, pol, episodes=200, seed=1000)
        print(f"| {variant} wall | {name} | {r['successes']}/{r['episodes']} = {r['success_rate']:.3f} | [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | {r['mean_path_length']:.1f} | {r['mean_final_distance']:.1f} |")
