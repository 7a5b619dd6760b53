"""fake_systems"""
