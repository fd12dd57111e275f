"""What the benchmarks ran on, for their result files."""
import os
import platform


def describe():
    """'N cores, CPU model name' (the model name from /proc/cpuinfo where there is one)."""
    name = platform.processor() or platform.machine()
    if os.path.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            name = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), name)
    return f'{os.cpu_count()} cores, {name}'
